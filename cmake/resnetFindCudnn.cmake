# Finds cuDNN and defines the imported target resnet::cudnn (used by resnet::cuda and by its installed
# package). Looks, in order, under CUDNN_ROOT (CMake or environment variable), in the CUDA toolkit, and in
# the folder of the Python `nvidia-cudnn` wheel that PyTorch installs (nvidia/cudnn/{include,lib}), asking
# /usr/bin/python3 and the first python3 on PATH. Sets CUDNN_FOUND, CUDNN_INCLUDE_DIR, CUDNN_LIBRARY,
# CUDNN_VERSION.
if(TARGET resnet::cudnn)
  return()
endif()

set(_resnet_cudnn_hints)
foreach(_root "${CUDNN_ROOT}" "$ENV{CUDNN_ROOT}" "${RESNET_CUDNN_HINT}")
  if(_root)
    list(APPEND _resnet_cudnn_hints "${_root}")
  endif()
endforeach()
if(CUDAToolkit_LIBRARY_ROOT)
  list(APPEND _resnet_cudnn_hints "${CUDAToolkit_LIBRARY_ROOT}")
endif()
if(CUDAToolkit_TARGET_DIR)
  list(APPEND _resnet_cudnn_hints "${CUDAToolkit_TARGET_DIR}")
endif()
foreach(_py /usr/bin/python3 python3)
  find_program(_resnet_py NAMES ${_py} NO_CACHE)
  if(_resnet_py)
    execute_process(
      COMMAND "${_resnet_py}" -c "import nvidia.cudnn as m; print(list(m.__path__)[0])"
      OUTPUT_VARIABLE _resnet_wheel RESULT_VARIABLE _resnet_rc ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(_resnet_rc EQUAL 0 AND EXISTS "${_resnet_wheel}")
      list(APPEND _resnet_cudnn_hints "${_resnet_wheel}")
    endif()
  endif()
  unset(_resnet_py)
endforeach()

find_path(CUDNN_INCLUDE_DIR cudnn_version.h HINTS ${_resnet_cudnn_hints} PATH_SUFFIXES include)
find_library(CUDNN_LIBRARY NAMES cudnn libcudnn.so.9 libcudnn.so.8 HINTS ${_resnet_cudnn_hints}
             PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu)

set(CUDNN_FOUND FALSE)
if(CUDNN_INCLUDE_DIR AND CUDNN_LIBRARY)
  file(STRINGS "${CUDNN_INCLUDE_DIR}/cudnn_version.h" _resnet_v REGEX "define CUDNN_(MAJOR|MINOR|PATCHLEVEL) ")
  string(REGEX REPLACE ".*CUDNN_MAJOR ([0-9]+).*" "\\1" _maj "${_resnet_v}")
  string(REGEX REPLACE ".*CUDNN_MINOR ([0-9]+).*" "\\1" _min "${_resnet_v}")
  string(REGEX REPLACE ".*CUDNN_PATCHLEVEL ([0-9]+).*" "\\1" _pat "${_resnet_v}")
  set(CUDNN_VERSION "${_maj}.${_min}.${_pat}")
  set(CUDNN_FOUND TRUE)
  add_library(resnet::cudnn UNKNOWN IMPORTED)
  set_target_properties(resnet::cudnn PROPERTIES IMPORTED_LOCATION "${CUDNN_LIBRARY}"
                                                 INTERFACE_INCLUDE_DIRECTORIES "${CUDNN_INCLUDE_DIR}")
endif()

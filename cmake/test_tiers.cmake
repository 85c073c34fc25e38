# Test tiers and kinds, as ctest labels, so a developer runs what a change needs:
#   quick      every op's gradient check and CPU-against-reference check and the core unit tests: under a
#              minute after an incremental build (`ctest --test-dir build -L quick -j 2`)
#   slow       everything else: whole networks, training runs, packaging, benchmarks' smoke runs
#   mpi        programs under mpirun; gpu: needs a GPU (skipped without one); packaging: install and
#              one-include checks; multinode: network-namespace hosts (tests/dist)
# Every test also gets OMP_WAIT_POLICY=PASSIVE (below). Every test gets exactly one tier; a test named nowhere below is slow. resnet_label_tests() labels the
# tests of the directory it is called from (a test's properties can only be set there), so each
# CMakeLists.txt that adds tests calls it last.
set(RESNET_QUICK_TESTS
    test_tensor test_compare test_gradcheck test_optim test_step_state test_staging_ring test_contracts
    test_grad_hooks test_mix_ema test_image_decode test_dist_local test_cpu_fast test_config test_cuda_kernels
    test_cuda_step_kernels test_augment test_tta_resize test_param_groups
    test_ops_registry test_ops_grad test_ops_fast test_ops_nhwc test_ops_bf16
    resnet_summary_bad_flag bench_train_bad_flag bench_block_bad_flag bench_train_cuda_graph_cpu
    bench_cpu_peak_smoke train_catsdogs_refuses_ranks_without_mpi gpu_check_plan)
set(RESNET_PACKAGING_TESTS test_install test_cuda_install test_odr test_one_include quickstart readme_blocks)
# The longest tests, seconds under `ctest -j 2` on the 2-core build machine, as their COST: ctest -j starts
# the costliest first, so the long ones and the multinode chain (one at a time: RESOURCE_LOCK netns) do not
# end the run alone on one core. A build directory that has run ctest once orders by its own times instead.
set(RESNET_TEST_COSTS
    test_install=86 smoke_train_catsdogs=38 test_ops_sim=33 multinode_catsdogs_partition=31 test_gradcheck=20
    test_models=17 readme_blocks=16 test_channels_last=16 test_augment_torchvision=13 test_io_interop=12
    multinode_ddp_2x2=10 test_finetune=9 multinode_srun=8 multinode_ddp_2x1=6 multinode_cluster=5
    multinode_catsdogs_dies=4 multinode_catsdogs_train=3)

function(resnet_label_tests)
  get_property(_tests DIRECTORY PROPERTY TESTS)
  foreach(_t IN LISTS _tests)
    if(_t IN_LIST RESNET_QUICK_TESTS)
      set(_labels quick)
    else()
      set(_labels slow)
    endif()
    if(_t MATCHES "_gpu$")
      list(APPEND _labels gpu)
    endif()
    if(_t MATCHES "^(test_collectives|test_ddp|test_dist_failure|test_dist_mpi|smoke_train_catsdogs_mpi|bench_dist|bench_allreduce_skew)")
      list(APPEND _labels mpi)
    endif()
    if(_t IN_LIST RESNET_PACKAGING_TESTS)
      list(APPEND _labels packaging)
    endif()
    set_property(TEST ${_t} APPEND PROPERTY LABELS ${_labels})
    foreach(_cost IN LISTS RESNET_TEST_COSTS)
      if(_cost MATCHES "^${_t}=([0-9]+)$")
        set_property(TEST ${_t} PROPERTY COST ${CMAKE_MATCH_1})
      endif()
    endforeach()
    # ctest -j runs several programs on the same cores: OpenMP threads that spin while they wait would take
    # the core another test needs (test_cpu_fast: 0.6 s alone, 54 s beside test_gradcheck), so they sleep.
    set_property(TEST ${_t} APPEND PROPERTY ENVIRONMENT "OMP_WAIT_POLICY=PASSIVE")
  endforeach()
endfunction()

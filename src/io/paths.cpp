// The file-system questions of the headers compiled once for the compiled mode (io/paths.hpp).
#include "resnet/io/paths_inl.hpp"

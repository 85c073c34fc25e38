// Image decoding (stb_image, zlib) compiled once for the compiled mode (data/image_decode.hpp).
#include "resnet/data/image_decode_inl.hpp"

// The unit that owns the test programs' shared precompiled header (resnet.hpp and Catch2),
// tests/CMakeLists.txt.

// The main() of the test programs that need nothing else: Catch2's session (tests/catch_session.cpp).
#include "catch_session.hpp"

int main(int argc, char* argv[]) { return run_catch_session(argc, argv); }

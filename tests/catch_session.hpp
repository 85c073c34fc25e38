// Catch2's session for the test programs with their own main() (MPI, a skip when Python lacks a module, the
// GPU switch): tests/catch_session.cpp holds Catch2's implementation, compiled once for every program. A
// unit that defined CATCH_CONFIG_RUNNER itself would compile it again (about 14 s each on the build
// machine, Catch2 v2 being one header).
#pragma once

int run_catch_session(int argc, char* argv[]);

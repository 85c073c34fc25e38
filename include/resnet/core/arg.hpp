// Named setters for options objects, the one options style of the library (as libtorch's TORCH_ARG):
//
//   struct SGDOptions {
//     RESNET_ARG(double, lr) = 0.1;
//     RESNET_ARG(double, momentum) = 0.0;
//   };
//   auto o = SGDOptions().lr(0.05).momentum(0.9);  // set: returns the options, so calls chain
//   double lr = o.lr();                             // get
//
// Validation stays where the value is used (one check per hyper-parameter, optim/check.hpp), so a value
// set here and a value set any other way meet the same check.
#pragma once

#include <utility>

#define RESNET_ARG(T, name)                                \
 public:                                                   \
  auto name(const T& new_##name)->decltype(*this) {        \
    this->name##_ = new_##name;                            \
    return *this;                                          \
  }                                                        \
  auto name(T&& new_##name)->decltype(*this) {             \
    this->name##_ = std::move(new_##name);                 \
    return *this;                                          \
  }                                                        \
  const T& name() const noexcept { return this->name##_; } \
  T& name() noexcept { return this->name##_; }             \
                                                           \
 private:                                                  \
  T name##_ /* the default follows the macro: = value; */

// Parameter groups: a group's learning rate (a multiple of the optimizer's, following set_lr) and weight
// decay give exactly the update of an optimizer made with those values for the group's parameters alone.
#include <memory>
#include <string>
#include <vector>

#include "resnet/resnet.hpp"
#include "test_util.hpp"

using namespace resnet;

namespace {

// Two parameters with fixed gradients: a matrix (decayed by the optimizer) and a vector (its group's).
struct Pair {
  Tensor<float> w = Tensor<float>::from_vector({0.5f, -1.0f, 2.0f, 0.25f}, {2, 2}),
                b = Tensor<float>::from_vector({1.0f, -3.0f}, {2});
  Pair() {
    w.requires_grad_(true);
    b.requires_grad_(true);
  }
  void set_grads(int step) {
    Tensor<float> s = sum(add(mul(w, w), scale(w, 0.1 * step)));
    s.backward();
    Tensor<float> t = sum(mul(b, scale(b, 0.5 + step)));
    t.backward();
  }
  optim::NamedParameters<float> all() const { return {{"fc.weight", w}, {"fc.bias", b}}; }
};

template <typename Make>
void check_groups_equal_separate(Make make) {
  Pair grouped, alone_w, alone_b;
  auto opt = make(grouped.all(), 0.2, 0.1);
  CHECK(opt->add_group(optim::is_norm_or_bias, optim::GroupOptions().lr_scale(0.5).weight_decay(0.0)) == 1);
  CHECK(opt->group_of(0) == 0);
  CHECK(opt->group_of(1) == 1);
  auto ow = make(optim::NamedParameters<float>{{"fc.weight", alone_w.w}}, 0.2, 0.1);
  auto ob = make(optim::NamedParameters<float>{{"fc.bias", alone_b.b}}, 0.1, 0.0);
  for (int step = 0; step < 4; ++step) {
    if (step == 2) {  // a schedule's change moves the group with the optimizer
      opt->set_lr(0.4);
      ow->set_lr(0.4);
      ob->set_lr(0.2);
    }
    for (auto* o : {opt.get(), ow.get(), ob.get()}) o->zero_grad();
    grouped.set_grads(step);
    alone_w.set_grads(step);
    alone_b.set_grads(step);
    opt->step();
    ow->step();
    ob->step();
  }
  CHECK(grouped.w.to_vector() == alone_w.w.to_vector());  // bit for bit
  CHECK(grouped.b.to_vector() == alone_b.b.to_vector());
  CHECK(grouped.b.to_vector() != alone_w.b.to_vector());  // the group did change something
}

}  // namespace

TEST_CASE("parameter groups: own rate and decay equal separate optimizers (SGD, AdamW)", "[optim][groups]") {
  check_groups_equal_separate([](const optim::NamedParameters<float>& p, double lr, double wd) {
    return std::make_unique<optim::SGD<float>>(
        p, optim::SGDOptions().lr(lr).momentum(0.9).nesterov(true).weight_decay(wd));
  });
  check_groups_equal_separate([](const optim::NamedParameters<float>& p, double lr, double wd) {
    return std::make_unique<optim::AdamW<float>>(p, optim::AdamWOptions().lr(lr).weight_decay(wd));
  });
}

TEST_CASE("parameter groups: refusals", "[optim][groups]") {
  Pair p;
  optim::SGD<float> opt(p.all(), optim::SGDOptions().lr(0.1));
  CHECK_THROWS_WITH(opt.add_group(optim::is_norm_or_bias, optim::GroupOptions().lr_scale(0)),
                    Catch::Contains("lr_scale must be finite and positive"));
  CHECK(opt.add_group(optim::is_norm_or_bias, optim::GroupOptions().weight_decay(0)) == 1);
  CHECK_THROWS_WITH(opt.add_group(optim::is_norm_or_bias, optim::GroupOptions()),
                    Catch::Contains("selects no parameter"));
  p.set_grads(0);
  opt.step();
  CHECK_THROWS_WITH(opt.add_group([](const std::string&, const TensorBase&) { return true; }, {}),
                    Catch::Contains("before the first step"));
}

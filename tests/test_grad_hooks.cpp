// Gradient-ready hooks (autograd/hooks.hpp): each fires once per backward pass, after the last node that
// contributes to its leaf, with every contribution of the pass already accumulated.
#include <vector>

#include "catch.hpp"
#include "resnet/resnet.hpp"
#include "test_util.hpp"

using namespace resnet;
using testing::leaf;

namespace {

struct Seen {
  int calls = 0;
  int64_t nodes_run = -1;  // progress when the hook fired
  int64_t nodes_total = -1;
  std::vector<double> grad;  // the gradient the hook saw
};

autograd::GradHookHandle watch(Tensor<double>& t, Seen& s) {
  return autograd::add_grad_ready_hook(t, [&s](TensorBase& g) {
    ++s.calls;
    s.nodes_run = autograd::backward_nodes_run();
    s.nodes_total = autograd::backward_nodes_total();
    s.grad = g.defined() ? Tensor<double>(g).to_vector() : std::vector<double>{};
  });
}

}  // namespace

TEST_CASE("grad-ready hooks fire in backward order with the final gradient", "[hooks]") {
  // loss = sum(relu(a * b) * c): c's gradient is final after the first node, a's and b's after mul.
  Tensor<double> a = leaf<double>({5}, 1), b = leaf<double>({5}, 2), c = leaf<double>({5}, 3);
  Seen sa, sb, sc;
  auto ha = watch(a, sa), hb = watch(b, sb), hc = watch(c, sc);
  Tensor<double> loss = sum(mul(relu(mul(a, b)), c));
  loss.backward();
  CHECK(sa.calls == 1);
  CHECK(sb.calls == 1);
  CHECK(sc.calls == 1);
  // Order: sum, mul(., c), relu, mul(a, b): 4 nodes.
  CHECK(sc.nodes_total == 4);
  CHECK(sc.nodes_run == 2);
  CHECK(sa.nodes_run == 4);
  CHECK(sb.nodes_run == 4);
  // The hook saw exactly what backward() left behind.
  testing::check_close("a at hook", sa.grad, a.grad().to_vector(), 0.0);
  testing::check_close("c at hook", sc.grad, c.grad().to_vector(), 0.0);
  // And that is the analytic gradient: d/dc = relu(a*b).
  std::vector<double> av = a.to_vector(), bv = b.to_vector(), want(5);
  for (size_t i = 0; i < 5; ++i) want[i] = std::max(av[i] * bv[i], 0.0);
  testing::check_close("dc", sc.grad, want, 1e-15);
}

TEST_CASE("a leaf used twice fires once, after both contributions", "[hooks]") {
  // loss = sum(a * w) + sum(relu(a) * v): a feeds two branches, so its hook waits for the later one.
  Tensor<double> a = leaf<double>({6}, 4), w = leaf<double>({6}, 5), v = leaf<double>({6}, 6);
  Seen sa;
  auto h = watch(a, sa);
  Tensor<double> loss = add(sum(mul(a, w)), sum(mul(relu(a), v)));
  loss.backward();
  REQUIRE(sa.calls == 1);
  CHECK(sa.nodes_run == sa.nodes_total);  // relu is the last node of the order
  std::vector<double> av = a.to_vector(), wv = w.to_vector(), vv = v.to_vector(), want(6);
  for (size_t i = 0; i < 6; ++i) want[i] = wv[i] + (av[i] > 0 ? vv[i] : 0.0);
  testing::check_close("da at hook (both branches)", sa.grad, want, 1e-15);
}

TEST_CASE("hooks fire once per pass, gradients accumulate, retain_graph passes fire again", "[hooks]") {
  Tensor<double> a = leaf<double>({4}, 7), b = leaf<double>({4}, 8);
  Seen sa;
  auto h = watch(a, sa);
  Tensor<double> loss = sum(mul(a, b));
  autograd::backward(loss, TensorBase(), /*retain_graph=*/true);
  CHECK(sa.calls == 1);
  testing::check_close("first pass", sa.grad, b.to_vector(), 0.0);
  autograd::backward(loss);
  CHECK(sa.calls == 2);
  std::vector<double> twice = b.to_vector();
  for (double& x : twice) x *= 2;
  testing::check_close("second pass: accumulated", sa.grad, twice, 1e-15);
  // A fresh graph: the hook sees the sum of all three passes.
  sum(mul(a, b)).backward();
  CHECK(sa.calls == 3);
  for (double& x : twice) x *= 1.5;
  testing::check_close("third pass", sa.grad, twice, 1e-15);
}

TEST_CASE("unreached and frozen leaves get no call; removed hooks stop", "[hooks]") {
  Tensor<double> a = leaf<double>({3}, 9), unused = leaf<double>({3}, 10);
  Tensor<double> frozen = testing::random_tensor<double>({3}, 11);
  Seen sa, su;
  auto ha = watch(a, sa);
  auto hu = watch(unused, su);
  testing::require_error_mentions(
      [&] {
        Seen s;
        auto hf = watch(frozen, s);
      },
      {"add_grad_ready_hook", "does not require grad"});
  sum(mul(a, frozen)).backward();
  CHECK(sa.calls == 1);
  CHECK(su.calls == 0);
  ha.remove();
  CHECK_FALSE(ha.active());
  sum(mul(a, frozen)).backward();
  CHECK(sa.calls == 1);
  { auto scoped = watch(a, sa); }  // destroyed: removed
  sum(mul(a, frozen)).backward();
  CHECK(sa.calls == 1);
}

TEST_CASE("backward on a leaf fires its hook; end callbacks run once at the end of the pass", "[hooks]") {
  Tensor<double> s = leaf<double>({1}, 12);
  Seen ss;
  auto h = watch(s, ss);
  autograd::backward(s);
  CHECK(ss.calls == 1);
  testing::check_close("d s / d s", ss.grad, std::vector<double>{1.0}, 0.0);

  Tensor<double> a = leaf<double>({4}, 13), b = leaf<double>({4}, 14);
  int ends = 0;
  int64_t run_at_end = -1, total = -1;
  bool hook_before_end = false;
  auto ha = autograd::add_grad_ready_hook(a, [&](TensorBase&) {
    hook_before_end = ends == 0;
    autograd::queue_backward_end_callback([&] {
      ++ends;
      run_at_end = autograd::backward_nodes_run();
      total = autograd::backward_nodes_total();
    });
  });
  sum(relu(mul(a, b))).backward();
  CHECK(hook_before_end);
  CHECK(ends == 1);
  CHECK(run_at_end == total);
  CHECK(autograd::current_backward_id() == 0);  // no pass running now
  testing::require_error_mentions([] { autograd::queue_backward_end_callback([] {}); },
                                  {"outside a backward pass"});
}

// Registry entries: max, average and global average pooling, forward and backward.
#include "ops/entry.hpp"

namespace opreg {
namespace {

std::string describe(const PoolParams& p) {
  return "k" + std::to_string(p.kernel_h) + "x" + std::to_string(p.kernel_w) + " s" +
         std::to_string(p.stride_h) + "x" + std::to_string(p.stride_w) + " p" + std::to_string(p.pad_h) +
         "x" + std::to_string(p.pad_w) + (p.count_include_pad ? "" : " exclude-pad");
}

Registrar pooling([] {
  const PoolParams stem{3, 3, 2, 2, 1, 1, true}, two{2, 2, 2, 2, 0, 0, true}, excl{3, 3, 2, 2, 1, 1, false},
      overlap{3, 2, 1, 2, 1, 0, true};
  for (const PoolParams& p : {stem, two, excl, overlap})
    for (const Shape& xs : {Shape{2, 3, 9, 8}, Shape{1, 2, 7, 7}}) {
      const Shape ys{xs[0], xs[1], p.out_h(xs[2]), p.out_w(xs[3])};
      const std::string ps = describe(p) + " x=" + xs.to_string();
      add<kAll>(op("max_pool2d", ps, {act("x", xs), grad_in("dy", ys)})
                    .accumulating()
                    .grad([p](auto& x, auto&, auto&) { return resnet::max_pool2d(x[0], p); }),
                [p, ys](auto& be, auto& a) {
                  auto y = a.out("y", ys);
                  auto idx = a.out_i("indices", ys);
                  be.maxpool2d_forward(a.x(0), y, idx, p);
                  auto dx = a.out("dx", a.x(0).shape());
                  be.maxpool2d_backward(a.x(1), idx, dx, a.acc);
                });
      add<kAll>(op("avg_pool2d", ps, {act("x", xs), grad_in("dy", ys)})
                    .accumulating()
                    .grad([p](auto& x, auto&, auto&) { return resnet::avg_pool2d(x[0], p); }),
                [p, ys](auto& be, auto& a) {
                  auto y = a.out("y", ys);
                  be.avgpool2d_forward(a.x(0), y, p);
                  auto dx = a.out("dx", a.x(0).shape());
                  be.avgpool2d_backward(a.x(1), dx, p, a.acc);
                });
    }
  for (int64_t hw : {1, 7, 49, 100}) {
    const Shape xs{3, 5, hw, 1}, ys{3, 5};
    add<kAll>(op("global_avg_pool", "hw=" + std::to_string(hw), {act("x", xs), grad_in("dy", ys)})
                  .accumulating()
                  .grad([](auto& x, auto&, auto&) { return resnet::global_avg_pool(x[0]); }),
              [ys](auto& be, auto& a) {
                auto y = a.out("y", ys);
                be.global_avgpool_forward(a.x(0), y);
                auto dx = a.out("dx", a.x(0).shape());
                be.global_avgpool_backward(a.x(1), dx, a.acc);
              });
  }
});

}  // namespace
}  // namespace opreg

// Learning-rate schedules as pure functions of the iteration (0-based), so a resumed run only needs the
// step count. Each can start with a linear warmup from warmup_start * lr to lr over warmup_steps; the
// schedule proper then runs over the remaining steps. Chosen by its options (named setters):
//
//   auto s = optim::make_schedule(optim::ScheduleOptions().kind(optim::ScheduleKind::Cosine)
//                                     .base_lr(0.1).total_steps(1000).warmup_steps(50));
//
// A schedule ends at total_steps: later steps keep its last rate (cosine's min_lr, one-cycle's
// base_lr / div_factor / final_div_factor). The name form, make_schedule("cosine", o), is for a program's
// flag.
#pragma once

#include "resnet/core/abi.hpp"

#include <cmath>
#include <memory>
#include <string>

#include "resnet/core/arg.hpp"
#include "resnet/core/error.hpp"
#include "resnet/optim/check.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace optim {

class LRSchedule {
 public:
  virtual ~LRSchedule() = default;
  virtual double lr(int64_t step) const = 0;
  virtual std::string name() const = 0;
};

enum class ScheduleKind { Constant, Step, Cosine, OneCycle };

inline std::string schedule_name(ScheduleKind k) {
  switch (k) {
    case ScheduleKind::Constant:
      return "constant";
    case ScheduleKind::Step:
      return "step";
    case ScheduleKind::Cosine:
      return "cosine";
    case ScheduleKind::OneCycle:
      return "onecycle";
  }
  return "unknown";
}

inline ScheduleKind schedule_kind(const std::string& name) {
  for (ScheduleKind k :
       {ScheduleKind::Constant, ScheduleKind::Step, ScheduleKind::Cosine, ScheduleKind::OneCycle})
    if (schedule_name(k) == name) return k;
  RESNET_FAIL("unknown schedule '", name, "' (expected constant, step, cosine or onecycle)");
}

struct ScheduleOptions {
  RESNET_ARG(ScheduleKind, kind) = ScheduleKind::Constant;
  RESNET_ARG(double, base_lr) = 0.1;        // peak learning rate (one-cycle's max_lr)
  RESNET_ARG(int64_t, total_steps) = 1000;  // iterations in the whole run, warmup included
  RESNET_ARG(int64_t, warmup_steps) = 0;
  RESNET_ARG(double, warmup_start) = 0.0;  // warmup begins at warmup_start * base_lr
  // step
  RESNET_ARG(int64_t, step_size) = 0;  // iterations between decays (0: a third of the run)
  RESNET_ARG(double, gamma) = 0.1;
  // cosine
  RESNET_ARG(double, min_lr) = 0.0;
  // one-cycle (PyTorch's OneCycleLR with cosine annealing)
  RESNET_ARG(double, pct_start) = 0.3;
  RESNET_ARG(double, div_factor) = 25.0;
  RESNET_ARG(double, final_div_factor) = 1e4;
};

class ScheduleBase : public LRSchedule {
 public:
  explicit ScheduleBase(const ScheduleOptions& o) : o_(o) {
    RESNET_CHECK(o.total_steps() > 0, "schedule: total_steps must be positive, got ", o.total_steps());
    RESNET_CHECK(o.warmup_steps() >= 0 && o.warmup_steps() < o.total_steps(), "schedule: warmup_steps (",
                 o.warmup_steps(), ") must be in [0, total_steps = ", o.total_steps(), ")");
    check_learning_rate("schedule: base_lr", o.base_lr());
  }
  double lr(int64_t step) const override {
    if (step < o_.warmup_steps()) {
      double f = static_cast<double>(step + 1) / static_cast<double>(o_.warmup_steps());
      return o_.base_lr() * (o_.warmup_start() + (1.0 - o_.warmup_start()) * f);
    }
    int64_t s = step - o_.warmup_steps(), n = o_.total_steps() - o_.warmup_steps();
    return after_warmup(s < n ? s : n - 1, n);
  }

 protected:
  // The schedule at position s in [0, n) of the post-warmup phase.
  virtual double after_warmup(int64_t s, int64_t n) const = 0;
  ScheduleOptions o_;
};

class ConstantSchedule : public ScheduleBase {
 public:
  using ScheduleBase::ScheduleBase;
  std::string name() const override { return "constant"; }

 protected:
  double after_warmup(int64_t, int64_t) const override { return o_.base_lr(); }
};

class StepSchedule : public ScheduleBase {
 public:
  using ScheduleBase::ScheduleBase;
  std::string name() const override { return "step"; }

 protected:
  double after_warmup(int64_t s, int64_t n) const override {
    int64_t size = o_.step_size() > 0 ? o_.step_size() : std::max<int64_t>(1, n / 3);
    return o_.base_lr() * std::pow(o_.gamma(), static_cast<double>(s / size));
  }
};

class CosineSchedule : public ScheduleBase {
 public:
  using ScheduleBase::ScheduleBase;
  std::string name() const override { return "cosine"; }

 protected:
  double after_warmup(int64_t s, int64_t n) const override {
    double t = n > 1 ? static_cast<double>(s) / static_cast<double>(n - 1) : 1.0;
    return o_.min_lr() + 0.5 * (o_.base_lr() - o_.min_lr()) * (1.0 + std::cos(M_PI * t));
  }
};

class OneCycleSchedule : public ScheduleBase {
 public:
  using ScheduleBase::ScheduleBase;
  std::string name() const override { return "onecycle"; }

 protected:
  double after_warmup(int64_t s, int64_t n) const override {
    const double initial = o_.base_lr() / o_.div_factor(), final_lr = initial / o_.final_div_factor();
    const double up = std::max(1.0, o_.pct_start() * static_cast<double>(n) - 1.0);
    const double x = static_cast<double>(s);
    auto anneal = [](double a, double b, double t) { return b + (a - b) / 2.0 * (1.0 + std::cos(M_PI * t)); };
    if (x <= up) return anneal(initial, o_.base_lr(), x / up);
    const double down = std::max(1.0, static_cast<double>(n - 1) - up);
    return anneal(o_.base_lr(), final_lr, std::min(1.0, (x - up) / down));
  }
};

inline std::unique_ptr<LRSchedule> make_schedule(const ScheduleOptions& o) {
  switch (o.kind()) {
    case ScheduleKind::Constant:
      return std::make_unique<ConstantSchedule>(o);
    case ScheduleKind::Step:
      return std::make_unique<StepSchedule>(o);
    case ScheduleKind::Cosine:
      return std::make_unique<CosineSchedule>(o);
    case ScheduleKind::OneCycle:
      return std::make_unique<OneCycleSchedule>(o);
  }
  RESNET_FAIL("schedule: unknown kind ", static_cast<int>(o.kind()));
}

// A program's flag: the kind by its name (constant, step, cosine, onecycle), the rest from `o`.
inline std::unique_ptr<LRSchedule> make_schedule(const std::string& name, ScheduleOptions o) {
  return make_schedule(o.kind(schedule_kind(name)));
}

}  // namespace optim
}  // namespace RESNET_ABI
}  // namespace resnet

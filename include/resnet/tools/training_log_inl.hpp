// The definitions of training_log.hpp: included by it in header-only mode, and compiled once into the
// library in the compiled mode (src/tools/training_log.cpp). Not for direct inclusion.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "resnet/core/abi.hpp"
#include "resnet/core/error.hpp"
#include "resnet/io/atomic_file.hpp"
#include "resnet/tools/training_log.hpp"

namespace resnet {
inline namespace RESNET_ABI {
namespace tools {

RESNET_INLINE std::string metrics_csv(const std::vector<EpochMetrics>& rows) {
  std::string s = std::string(metrics_header()) + "\n";
  char buf[256];
  for (const auto& r : rows) {
    std::snprintf(buf, sizeof(buf), "%lld,%.6f,%.6f,%.6f,%.8g,%.1f\n", static_cast<long long>(r.epoch),
                  r.train_loss, r.test_loss, r.test_acc, r.lr, r.seconds);
    s += buf;
  }
  return s;
}

// Reads the rows of an existing metrics.csv (a missing file is an empty log).
RESNET_INLINE std::vector<EpochMetrics> read_metrics_csv(const std::string& path) {
  std::vector<EpochMetrics> rows;
  std::ifstream in(path);
  if (!in) return rows;
  std::string line;
  int64_t lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    if (lineno == 1) {
      RESNET_CHECK(line == metrics_header(), "'", path, "' does not start with the header '",
                   metrics_header(), "'");
      continue;
    }
    if (line.empty()) continue;
    EpochMetrics r;
    long long e = 0;
    int n = std::sscanf(line.c_str(), "%lld,%lf,%lf,%lf,%lf,%lf", &e, &r.train_loss, &r.test_loss,
                        &r.test_acc, &r.lr, &r.seconds);
    RESNET_CHECK(n == 6, "'", path, "' line ", lineno, " is not a metrics row: '", line, "'");
    r.epoch = e;
    rows.push_back(r);
  }
  return rows;
}

RESNET_INLINE void write_text_atomically(const std::string& path, const std::string& text) {
  io::AtomicFile f(path);
  f.write(text);
  f.commit();
}

namespace detail {

RESNET_INLINE std::string svg_number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", v);
  return buf;
}
RESNET_INLINE std::string tick_label(double v, double step) {
  char buf[32];
  int decimals = step >= 1 ? 0 : std::min(4, static_cast<int>(std::ceil(-std::log10(step))));
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}
// A "nice" tick step (1, 2 or 5 times a power of ten) giving about `target` ticks over `range`.
RESNET_INLINE double nice_step(double range, int target) {
  double raw = range / std::max(1, target);
  double p = std::pow(10.0, std::floor(std::log10(raw)));
  double m = raw / p;
  return (m < 1.5 ? 1 : m < 3.5 ? 2 : m < 7.5 ? 5 : 10) * p;
}

struct Series {
  std::string name, color;
  std::vector<double> y;
};

// One panel: axes, grid, ticks, the series as polylines with markers, and a legend.
RESNET_INLINE std::string svg_panel(double x0, double y0, double w, double h, const std::string& title,
                                    const std::vector<int64_t>& epochs, const std::vector<Series>& series) {
  std::ostringstream s;
  double lo = 1e300, hi = -1e300;
  std::vector<double> all;
  for (const auto& se : series)
    for (double v : se.y)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v), all.push_back(v);
  if (lo > hi) lo = 0, hi = 1;
  if (all.size() >=
      4) {  // one wild early value (test loss with fresh BN statistics) must not flatten the rest
    std::nth_element(all.begin(), all.begin() + static_cast<long>(all.size() / 2), all.end());
    const double median = all[all.size() / 2];
    if (median > 0 && hi > 3 * median) hi = 3 * median;
  }
  if (hi - lo < 1e-6) lo -= 0.05, hi += 0.05;
  double ystep = nice_step(hi - lo, 5);
  lo = std::floor(lo / ystep) * ystep;
  hi = std::ceil(hi / ystep) * ystep;
  int64_t e_lo = epochs.empty() ? 1 : epochs.front(), e_hi = epochs.empty() ? 1 : epochs.back();
  if (e_hi == e_lo) e_hi = e_lo + 1;
  const double left = x0 + 55, right = x0 + w - 15, top = y0 + 30, bottom = y0 + h - 40;
  auto px = [&](double e) { return left + (e - e_lo) / double(e_hi - e_lo) * (right - left); };
  auto py = [&](double v) {
    return bottom - (std::min(v, hi) - lo) / (hi - lo) * (bottom - top);
  };  // clipped
  s << "<text x=\"" << svg_number((left + right) / 2) << "\" y=\"" << svg_number(y0 + 18)
    << "\" text-anchor=\"middle\" font-size=\"14\" font-weight=\"bold\">" << title << "</text>\n";
  for (double v = lo; v <= hi + ystep / 2; v += ystep) {
    s << "<line x1=\"" << svg_number(left) << "\" x2=\"" << svg_number(right) << "\" y1=\""
      << svg_number(py(v)) << "\" y2=\"" << svg_number(py(v)) << "\" stroke=\"#e0e0e0\"/>\n";
    s << "<text x=\"" << svg_number(left - 6) << "\" y=\"" << svg_number(py(v) + 4)
      << "\" text-anchor=\"end\" font-size=\"11\">" << tick_label(v, ystep) << "</text>\n";
  }
  double xstep = std::max(1.0, nice_step(double(e_hi - e_lo), 8));
  for (double e = std::ceil(e_lo / xstep) * xstep; e <= e_hi + 1e-9; e += xstep) {
    s << "<line x1=\"" << svg_number(px(e)) << "\" x2=\"" << svg_number(px(e)) << "\" y1=\""
      << svg_number(bottom) << "\" y2=\"" << svg_number(bottom + 4) << "\" stroke=\"#444\"/>\n";
    s << "<text x=\"" << svg_number(px(e)) << "\" y=\"" << svg_number(bottom + 17)
      << "\" text-anchor=\"middle\" font-size=\"11\">" << tick_label(e, 1) << "</text>\n";
  }
  s << "<text x=\"" << svg_number((left + right) / 2) << "\" y=\"" << svg_number(bottom + 33)
    << "\" text-anchor=\"middle\" font-size=\"12\">epoch</text>\n";
  s << "<rect x=\"" << svg_number(left) << "\" y=\"" << svg_number(top) << "\" width=\""
    << svg_number(right - left) << "\" height=\"" << svg_number(bottom - top)
    << "\" fill=\"none\" stroke=\"#444\"/>\n";
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& se = series[k];
    s << "<polyline fill=\"none\" stroke=\"" << se.color << "\" stroke-width=\"2\" points=\"";
    for (size_t i = 0; i < se.y.size() && i < epochs.size(); ++i)
      if (std::isfinite(se.y[i]))
        s << svg_number(px(double(epochs[i]))) << "," << svg_number(py(se.y[i])) << " ";
    s << "\"/>\n";
    for (size_t i = 0; i < se.y.size() && i < epochs.size(); ++i)
      if (std::isfinite(se.y[i]))
        s << "<circle cx=\"" << svg_number(px(double(epochs[i]))) << "\" cy=\"" << svg_number(py(se.y[i]))
          << "\" r=\"2.5\" fill=\"" << se.color << "\"/>\n";
    double ly = top + 14 + 16 * double(k);
    s << "<line x1=\"" << svg_number(right - 120) << "\" x2=\"" << svg_number(right - 100) << "\" y1=\""
      << svg_number(ly - 4) << "\" y2=\"" << svg_number(ly - 4) << "\" stroke=\"" << se.color
      << "\" stroke-width=\"2\"/>\n";
    s << "<text x=\"" << svg_number(right - 95) << "\" y=\"" << svg_number(ly) << "\" font-size=\"11\">"
      << se.name << "</text>\n";
  }
  return s.str();
}

RESNET_INLINE std::string xml_escape(const std::string& in) {
  std::string out;
  for (char c : in) {
    if (c == '<')
      out += "&lt;";
    else if (c == '>')
      out += "&gt;";
    else if (c == '&')
      out += "&amp;";
    else if (c == '"')
      out += "&quot;";
    else
      out += c;
  }
  return out;
}

}  // namespace detail

// Two panels side by side: train and test loss, and test accuracy, per epoch.
RESNET_INLINE std::string training_curves_svg(const std::vector<EpochMetrics>& rows,
                                              const std::string& title) {
  std::vector<int64_t> epochs;
  detail::Series train{"train loss", "#1f77b4", {}}, test{"test loss", "#ff7f0e", {}},
      acc{"test accuracy", "#2ca02c", {}};
  for (const auto& r : rows) {
    epochs.push_back(r.epoch);
    train.y.push_back(r.train_loss);
    test.y.push_back(r.test_loss);
    acc.y.push_back(r.test_acc);
  }
  std::ostringstream s;
  s << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"900\" height=\"380\" viewBox=\"0 0 900 380\" "
       "font-family=\"sans-serif\">\n";
  s << "<rect width=\"900\" height=\"380\" fill=\"white\"/>\n";
  s << "<text x=\"450\" y=\"20\" text-anchor=\"middle\" font-size=\"13\">" << detail::xml_escape(title)
    << "</text>\n";
  s << detail::svg_panel(0, 25, 450, 355, "loss", epochs, {train, test});
  s << detail::svg_panel(450, 25, 450, 355, "test accuracy", epochs, {acc});
  s << "</svg>\n";
  return s.str();
}

}  // namespace tools
}  // namespace RESNET_ABI
}  // namespace resnet

#!/usr/bin/env python3
"""check_onnx.py MANIFEST: checks ONNX files exported by tests/test_onnx.cpp with code that is not ours.

MANIFEST (JSON, written by the C++ test) lists cases:
  {"name", "onnx", "opset", "opencv": bool, "initializers": [names] or null, "metadata": {key: value},
   "forbid_ops": [...], "require_ops": [...], "runs": [{"label", "input", "input_shape", "output",
   "output_shape"}]}
For each case: onnx.checker.check_model(full_check=True) (structure and strict shape inference), the opset,
a symbolic batch dimension on the input and output, the initialiser names, the metadata properties and the
operators; then, when "opencv" is set, cv2.dnn.readNetFromONNX runs every input (raw little-endian float32)
and its output must equal ours within 1e-4 of the largest |value| of ours.

Exit status: 0 all passed, 1 a check failed, 77 numpy, onnx or cv2 cannot be imported (ctest: skipped).
"""
import json
import os
import sys
import time

try:
    import numpy as np
    import onnx
    import cv2
except ImportError as e:
    print(f"SKIPPED: {sys.executable} cannot import {e.name} (apt-get install python3-onnx python3-opencv)")
    sys.exit(77)

TOLERANCE = 1e-4


def read_f32(path, shape):
    a = np.fromfile(path, dtype="<f4")
    if a.size != int(np.prod(shape)):
        raise ValueError(f"{path}: {a.size} floats, expected {shape}")
    return a.reshape(shape)


def symbolic_batch(value_info):
    dims = value_info.type.tensor_type.shape.dim
    return len(dims) > 0 and dims[0].dim_param != "" and not dims[0].HasField("dim_value")


def check_case(case, base):
    failures = []
    path = os.path.join(base, case["onnx"])
    start = time.time()
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)  # raises on any problem
    print(f"{case['name']}: onnx.checker (full) accepts {os.path.basename(path)}"
          f" ({os.path.getsize(path) / 1e6:.1f} MB, {len(model.graph.node)} nodes, {time.time() - start:.2f} s)")

    opsets = {o.domain: o.version for o in model.opset_import}
    if opsets.get("", None) != case["opset"]:
        failures.append(f"opset {opsets}, expected {case['opset']}")
    g = model.graph
    if len(g.input) != 1 or len(g.output) != 1:
        failures.append(f"{len(g.input)} inputs and {len(g.output)} outputs, expected one each")
    elif not (symbolic_batch(g.input[0]) and symbolic_batch(g.output[0])):
        failures.append("the batch dimension of the input or output is not symbolic")

    if case.get("initializers") is not None:
        got, want = {t.name for t in g.initializer}, set(case["initializers"])
        if got != want:
            failures.append(f"initialisers: missing {sorted(want - got)[:5]}, unexpected {sorted(got - want)[:5]}")
    props = {p.key: p.value for p in model.metadata_props}
    for k, v in case.get("metadata", {}).items():
        if props.get(k) != v:
            failures.append(f"metadata '{k}' is {props.get(k)!r}, expected {v!r}")
    ops = {n.op_type for n in g.node}
    for op in case.get("forbid_ops", []):
        if op in ops:
            failures.append(f"operator {op} should not be in the graph")
    for op in case.get("require_ops", []):
        if op not in ops:
            failures.append(f"operator {op} is missing from the graph")

    if case.get("opencv"):
        net = cv2.dnn.readNetFromONNX(path)
        for run in case["runs"]:  # batches of different sizes through one net: the batch dimension is free
            x = read_f32(os.path.join(base, run["input"]), run["input_shape"])
            want = read_f32(os.path.join(base, run["output"]), run["output_shape"])
            net.setInput(x)
            got = net.forward()
            if got.shape != want.shape:
                failures.append(f"{run['label']}: OpenCV gives shape {got.shape}, ours {want.shape}")
                continue
            scale = float(np.max(np.abs(want)))
            err = float(np.max(np.abs(got.astype(np.float64) - want))) / max(scale, 1e-30)
            ok = np.isfinite(got).all() and err <= TOLERANCE
            print(f"{case['name']} {run['label']}: OpenCV {cv2.__version__} vs ours, max |diff| / max |ours| ="
                  f" {err:.2e} (limit {TOLERANCE:g}){'' if ok else '  FAIL'}")
            if not ok:
                failures.append(f"{run['label']}: relative error {err:.3e} > {TOLERANCE:g}")
    return failures


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    manifest = sys.argv[1]
    with open(manifest) as f:
        cases = json.load(f)["cases"]
    base = os.path.dirname(os.path.abspath(manifest))
    print(f"onnx {onnx.__version__}, OpenCV {cv2.__version__}, {len(cases)} models")
    bad = 0
    for case in cases:
        try:
            failures = check_case(case, base)
        except Exception as e:  # the checker's and OpenCV's errors: report, keep checking the others
            failures = [f"{type(e).__name__}: {e}"]
        for f in failures:
            print(f"FAIL {case['name']}: {f}")
        bad += bool(failures)
    print(f"check_onnx: {len(cases) - bad} of {len(cases)} models passed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())

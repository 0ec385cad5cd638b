"""Benchmark helper for scripts/bench.sh: radscore vs PyRadiomics, same run, same machine.

Subcommands (all paths explicit; scripts/bench.sh wires them together):

  prepare  --shared DIR --work DIR
      Lay out the cases in WORK: the IBSI CT phantom is referenced in place (never copied:
      CC BY-NC); the PyRadiomics NRRD image/label pairs are converted to NIfTI in WORK.
      Writes WORK/cases.json and one radscore settings file per case.
  pyrad    --image F --mask F --params YAML --classes a,b --out JSON
      One PyRadiomics extraction (one process), with in-process timings in the output.
  noop
      Import PyRadiomics and SimpleITK and exit: the interpreter start-up cost.
  measure  --work DIR --radscore BIN --python PY --runs N
      Run every variant of every case N times, interleaved, under /usr/bin/time -v;
      writes WORK/runs.tsv and keeps the last outputs for a value cross-check.
  report   --work DIR --out MD
      Medians, spreads, ratios, a value cross-check and the machine description, as
      markdown.
"""

import argparse
import json
import math
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BIN_WIDTH = 25.0
PYRAD_CLASSES = ["shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"]
NRRD_CASES = ["brain1", "brain2", "breast1"]
# The radscore families `radscore extract --params` computes for each PyRadiomics class
# (src/pyradiomics/names.rs maps every PyRadiomics feature onto one family).
RADSCORE_FAMILIES = {
    "shape": ["morphology"],
    "firstorder": ["intensity_stats", "intensity_histogram", "pyradiomics_energy"],
    "glcm": ["glcm"],
    "glrlm": ["glrlm"],
    "glszm": ["glszm"],
    "gldm": ["ngldm"],
    "ngtdm": ["ngtdm"],
}


# --------------------------------------------------------------------------------------
# prepare


def prepare(args):
    import SimpleITK as sitk
    import numpy as np

    shared, work = Path(args.shared).resolve(), Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    pairs = [
        (
            "ibsi_ct_phantom",
            "IBSI 1 CT phantom (PAT1 GTV-1), NIfTI, read in place",
            shared / "ibsi1/ct_phantom/nifti/image/phantom.nii.gz",
            shared / "ibsi1/ct_phantom/nifti/mask/mask.nii.gz",
        )
    ]
    for name in NRRD_CASES:
        src = shared / "pyradiomics/images"
        case_dir = work / name
        case_dir.mkdir(exist_ok=True)
        image, label = case_dir / "image.nii.gz", case_dir / "mask.nii.gz"
        img = sitk.ReadImage(str(src / f"{name}_image.nrrd"))
        lab = sitk.ReadImage(str(src / f"{name}_label.nrrd"))
        lab_arr = sitk.GetArrayViewFromImage(lab)
        if lab_arr.min() < 0 or lab_arr.max() > 255:
            sys.exit(f"prepare: {name} label values outside 0..255")
        sitk.WriteImage(img, str(image))
        sitk.WriteImage(sitk.Cast(lab, sitk.sitkUInt8), str(label))
        pairs.append((name, f"PyRadiomics test case {name}, NRRD converted to NIfTI", image, label))

    cases = []
    for name, source, image, mask in pairs:
        img = sitk.ReadImage(str(image))
        msk = sitk.ReadImage(str(mask))
        arr = sitk.GetArrayFromImage(img).astype(np.float64)
        roi = sitk.GetArrayFromImage(msk) == 1
        if arr.shape != roi.shape:
            sys.exit(f"prepare: {name}: image and mask grids differ")
        zs, ys, xs = np.nonzero(roi)
        roi_min = float(arr[roi].min())
        # PyRadiomics' fixed-bin-width origin: floor(min / w) * w (imageoperations.getBinEdges);
        # radscore maps binWidth to the same edges (pyradiomics_edges), reported only.
        lower = math.floor(roi_min / BIN_WIDTH) * BIN_WIDTH
        cases.append(
            {
                "name": name,
                "source": source,
                "image": str(image),
                "mask": str(mask),
                "grid_xyz": list(img.GetSize()),
                "spacing_xyz": [round(s, 4) for s in img.GetSpacing()],
                "roi_voxels": int(roi.sum()),
                "roi_bbox_xyz": [
                    int(xs.max() - xs.min() + 1),
                    int(ys.max() - ys.min() + 1),
                    int(zs.max() - zs.min() + 1),
                ],
                "roi_min": roi_min,
                "bin_lower_bound": lower,
            }
        )
    (work / "cases.json").write_text(json.dumps(cases, indent=2) + "\n")
    write_class_params(work)
    for c in cases:
        print(f"  {c['name']}: grid {c['grid_xyz']}, {c['roi_voxels']} ROI voxels, "
              f"bin origin {c['bin_lower_bound']:g}")


# The PyRadiomics parameters both tools run with: original image only, no resampling, no
# normalisation, no re-segmentation, 3D, fixed bin width 25 (bins from floor(min/25)*25,
# which radscore's mapping of binWidth reproduces), texture distance 1, symmetric GLCM,
# GLCM/GLRLM features averaged over the 13 directions (IBSI 3D_avg), one merged matrix for
# GLSZM/GLDM/NGTDM (IBSI 3D), voxelArrayShift 0 (PyRadiomics' default), label 1.
BASE_PARAMS = {
    "imageType": {"Original": {}},
    "setting": {
        "label": 1,
        "binWidth": BIN_WIDTH,
        "resampledPixelSpacing": None,
        "normalize": False,
        "force2D": False,
        "distances": [1],
        "symmetricalGLCM": True,
        "weightingNorm": None,
        "voxelArrayShift": 0,
        "additionalInfo": False,
    },
}


def write_class_params(work):
    """One PyRadiomics parameter file per class label ("all" = every class), given to both
    tools: PyRadiomics reads it, radscore maps it (`radscore extract --params`)."""
    for label in ["all"] + PYRAD_CLASSES:
        doc = dict(BASE_PARAMS)
        doc["featureClass"] = {c: None for c in (PYRAD_CLASSES if label == "all" else [label])}
        (work / f"params-{label}.json").write_text(json.dumps(doc, indent=2) + "\n")


# --------------------------------------------------------------------------------------
# one PyRadiomics extraction


def pyrad(args):
    t0 = time.perf_counter()
    import radiomics
    from radiomics import featureextractor

    t_import = time.perf_counter() - t0
    radiomics.setVerbosity(40)  # errors only
    extractor = featureextractor.RadiomicsFeatureExtractor(args.params)
    extractor.disableAllFeatures()
    for c in args.classes.split(","):
        extractor.enableFeatureClassByName(c)
    t1 = time.perf_counter()
    result = extractor.execute(args.image, args.mask)
    t_execute = time.perf_counter() - t1
    features = {}
    for k, v in result.items():
        if k.startswith("original_"):
            try:
                features[k] = float(v)
            except (TypeError, ValueError):
                pass
    out = {"import_s": t_import, "execute_s": t_execute, "features": features}
    Path(args.out).write_text(json.dumps(out, indent=1) + "\n")


def noop(_args):
    import radiomics.featureextractor  # noqa: F401
    import SimpleITK  # noqa: F401


# --------------------------------------------------------------------------------------
# measure


def parse_time_v(text):
    """Peak RSS (KiB) from GNU time -v output ("Maximum resident set size")."""
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    if not rss:
        raise RuntimeError("unexpected /usr/bin/time -v output:\n" + text)
    return int(rss.group(1))


def loadavg():
    return float(Path("/proc/loadavg").read_text().split()[0])


def busy_processes(threshold=20.0):
    """Other processes using CPU right now (name and %CPU from ps), for the report."""
    out = subprocess.run(
        ["ps", "-eo", "pid=,pcpu=,comm="], capture_output=True, text=True, check=True
    ).stdout
    me = os.getpid()
    busy = []
    for line in out.splitlines():
        pid, pcpu, comm = line.split(None, 2)
        if int(pid) != me and float(pcpu) >= threshold:
            busy.append(f"{comm.strip()} ({float(pcpu):.0f}%)")
    return busy


def variants(case, radscore, python, work):
    out_dir = work / "out"
    out_dir.mkdir(exist_ok=True)
    name = case["name"]
    for classes in [",".join(PYRAD_CLASSES)] + PYRAD_CLASSES:
        label = "all" if "," in classes else classes
        params = str(work / f"params-{label}.json")
        rad_out = out_dir / f"{name}.radscore.{label}.json"
        yield (
            "radscore",
            label,
            [radscore, "extract", "--series", case["image"], "--mask", case["mask"],
             "--params", params, "--naming", "pyradiomics", "--out", str(rad_out), "--quiet"],
            rad_out,
        )
        py_out = out_dir / f"{name}.pyradiomics.{label}.json"
        yield (
            "pyradiomics",
            label,
            [python, str(HERE / "bench.py"), "pyrad", "--image", case["image"], "--mask",
             case["mask"], "--params", params, "--classes", classes, "--out", str(py_out)],
            py_out,
        )


def check_output(case_name, tool, out):
    """Refuse to time a tool that did not produce features."""
    doc = json.loads(Path(out).read_text())
    if tool == "radscore":
        lesion = doc["lesions"][0]
        if lesion["status"] != "ok":
            raise RuntimeError(f"radscore failed on {case_name}: {lesion['error']}")
    elif not doc["features"]:
        raise RuntimeError(f"PyRadiomics produced no features on {case_name}")


def run_timed(cmd, time_file):
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-v", "-o", str(time_file)] + cmd, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    # CPU time of the whole process tree from rusage (finer than time -v's 10 ms).
    cpu_s = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    if proc.returncode != 0:
        raise RuntimeError(
            f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stderr[-2000:]}"
        )
    rss_kib = parse_time_v(Path(time_file).read_text())
    return wall, rss_kib, cpu_s


def measure(args):
    work = Path(args.work).resolve()
    cases = json.loads((work / "cases.json").read_text())
    time_file = work / "time-v.txt"
    # Give a concurrent build on this shared machine a chance to finish first.
    waited, deadline = 0, time.monotonic() + args.idle_wait
    while loadavg() >= args.idle_load and time.monotonic() < deadline:
        if waited == 0:
            print(f"waiting up to {args.idle_wait} s for the 1-min load to drop below "
                  f"{args.idle_load} (now {loadavg():.2f})")
        time.sleep(10)
        waited += 10
    env_info = {
        "idle_wait": f"waited {waited} s (up to {args.idle_wait} s) for load < {args.idle_load}",
        "load_before": Path("/proc/loadavg").read_text().strip(),
        "busy_before": busy_processes(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    plan = []
    for case in cases:
        for tool, classes, cmd, out in variants(case, args.radscore, args.python, work):
            plan.append((case["name"], tool, classes, cmd, out))
    noop_cmd = [args.python, str(HERE / "bench.py"), "noop"]

    # One warm-up pass (file cache, page cache of binaries and wheels), not recorded.
    print(f"warm-up: {len(plan)} commands")
    for case_name, tool, _, cmd, out in plan:
        run_timed(cmd, time_file)
        check_output(case_name, tool, out)
    run_timed(noop_cmd, time_file)

    rows = []
    busy_seen = set()
    for rep in range(1, args.runs + 1):
        # Interleave tools and cases so a burst of outside load hits both sides alike.
        for case_name, tool, classes, cmd, out in plan:
            load = loadavg()
            wall, rss, cpu = run_timed(cmd, time_file)
            extra = ""
            if tool == "pyradiomics":
                extra = f"{json.loads(Path(out).read_text())['execute_s']:.6f}"
            rows.append([rep, case_name, tool, classes, f"{wall:.6f}", f"{cpu:.4f}", rss,
                         f"{load:.2f}", extra])
        wall, rss, cpu = run_timed(noop_cmd, time_file)
        rows.append([rep, "-", "python-import-only", "-", f"{wall:.6f}", f"{cpu:.4f}", rss,
                     f"{loadavg():.2f}", ""])
        busy_seen.update(b.split(" (")[0] for b in busy_processes())
        print(f"run {rep}/{args.runs} done, load {loadavg():.2f}")

    header = ["rep", "case", "tool", "classes", "wall_s", "cpu_s", "max_rss_kib", "load1",
              "pyrad_execute_s"]
    with open(work / "runs.tsv", "w") as f:
        f.write("\t".join(header) + "\n")
        for r in rows:
            f.write("\t".join(str(x) for x in r) + "\n")
    env_info.update(
        {
            "load_after": Path("/proc/loadavg").read_text().strip(),
            "busy_during": sorted(busy_seen - {"python", "bench.py", "ps"}),
            "finished": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "runs": args.runs,
        }
    )
    (work / "measure-env.json").write_text(json.dumps(env_info, indent=2) + "\n")


# --------------------------------------------------------------------------------------
# report


def cpu_model():
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def mem_total_gib():
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal"):
            return int(line.split()[1]) / 1024**2
    return float("nan")


def fmt_s(x):
    if x < 0.1:
        return f"{x * 1000:.1f} ms"
    return f"{x * 1000:.0f} ms" if x < 10 else f"{x:.1f} s"


def spread(vals):
    return f"{fmt_s(min(vals))}–{fmt_s(max(vals))}"


def ratio(a, b):
    return f"{a / b:.1f}×" if b > 0 else "n/a"


def mib(kib):
    return f"{kib / 1024:.0f} MiB"


def radscore_features(path):
    doc = json.loads(Path(path).read_text())
    lesion = doc["lesions"][0]
    feats = lesion.get("features")
    if isinstance(feats, dict):
        return feats
    if isinstance(feats, list):
        return {f["name"]: f["value"] for f in feats}
    return {}


BEGIN = "<!-- pyradiomics:begin -->"
END = "<!-- pyradiomics:end -->"
# Speed-up the issue asks for on the full feature set (issue #7).
TARGET_SPEEDUP = 30.0


def report(args):
    work = Path(args.work).resolve()
    cases = json.loads((work / "cases.json").read_text())
    env = json.loads((work / "measure-env.json").read_text())
    versions = json.loads((work / "versions.json").read_text())
    rows = []
    with open(work / "runs.tsv") as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            rows.append(dict(zip(header, line.rstrip("\n").split("\t"))))

    def sel(case, tool, classes):
        return [r for r in rows if r["case"] == case and r["tool"] == tool
                and r["classes"] == classes]

    def med(rs, key):
        return statistics.median(float(r[key]) for r in rs)

    def walls(rs):
        return [float(x["wall_s"]) for x in rs]

    loads = [float(r["load1"]) for r in rows]
    md = []
    w = md.append
    w(BEGIN)
    w("# Benchmark: radscore vs PyRadiomics")
    w("")
    w("_Generated by `scripts/bench.sh pyradiomics` on "
      f"{env['finished']}; do not edit by hand — re-run the script._")
    w("")
    w("Feature extraction for one lesion per case with every PyRadiomics feature class "
      "(shape, first order, GLCM, GLRLM, GLSZM, GLDM, NGTDM), each class alone and all "
      "together. Both tools get the same PyRadiomics parameter file (original image, no "
      "resampling, no re-segmentation, 3D, bin width 25, distance 1; radscore maps it with "
      "`radscore extract --params`), read the same NIfTI image and mask from disk, one "
      "process per extraction, one after the other, interleaved, on the same cores of the "
      "same machine in the same run.")
    w("")
    w("## Machine, versions and load")
    w("")
    w(f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores, both tools unpinned on all "
      f"of them; memory {mem_total_gib():.1f} GiB; {platform.system()} {platform.release()}")
    for k, v in versions.items():
        w(f"- {k}: {v}")
    w(f"- Runs: {env['runs']} measured per variant (after one unrecorded warm-up pass), "
      "interleaved case by case and tool by tool; tables give the median and the "
      "min–max spread.")
    w(f"- **Load average** (1-min): {env['load_before'].split()[0]} before, "
      f"{env['load_after'].split()[0]} after; over the measured runs "
      f"{min(loads):.2f}–{max(loads):.2f} (median {statistics.median(loads):.2f}) on "
      f"{os.cpu_count()} cores ({env['idle_wait']}).")
    busy = ", ".join(env["busy_before"]) or "none"
    w(f"- Other processes at ≥ 20 % CPU when the measurement started: {busy}; seen "
      f"between runs: {', '.join(env['busy_during']) or 'none'}. The machine is shared "
      "with other builds: wall times under load are inflated for both tools, which is why "
      "CPU time (user+sys) is reported too.")
    w("")
    w("## Cases")
    w("")
    w("| case | source | grid (x×y×z) | spacing (mm) | ROI voxels | ROI bounding box |")
    w("|---|---|---|---|---:|---|")
    for c in cases:
        w(f"| {c['name']} | {c['source']} | {'×'.join(map(str, c['grid_xyz']))} | "
          f"{' × '.join(f'{s:g}' for s in c['spacing_xyz'])} | {c['roi_voxels']:,} | "
          f"{'×'.join(map(str, c['roi_bbox_xyz']))} |")
    w("")
    w("## Speed-up per class and overall")
    w("")
    w("Speed-up = PyRadiomics ÷ radscore, whole process (wall time, medians), summed over "
      "the four cases; the `execute()` column divides PyRadiomics' in-process "
      "`RadiomicsFeatureExtractor.execute` time (no interpreter start-up or imports) by "
      "radscore's whole-process wall time, which still includes its start-up and reading "
      "the files. Peak memory is the largest median peak RSS over the cases. "
      f"Target: {TARGET_SPEEDUP:g}× on the full feature set (`all`).")
    w("")
    w("| class | radscore wall (Σ cases) | PyRadiomics wall (Σ cases) | speed-up (wall) | "
      "speed-up (CPU) | speed-up (`execute()`) | radscore peak RSS | PyRadiomics peak RSS |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    summary = {}
    for cls in ["all"] + PYRAD_CLASSES:
        rw = sum(med(sel(c["name"], "radscore", cls), "wall_s") for c in cases)
        pw = sum(med(sel(c["name"], "pyradiomics", cls), "wall_s") for c in cases)
        rc = sum(med(sel(c["name"], "radscore", cls), "cpu_s") for c in cases)
        pc = sum(med(sel(c["name"], "pyradiomics", cls), "cpu_s") for c in cases)
        pe = sum(statistics.median(float(x["pyrad_execute_s"])
                                   for x in sel(c["name"], "pyradiomics", cls)) for c in cases)
        rr = max(med(sel(c["name"], "radscore", cls), "max_rss_kib") for c in cases)
        pr = max(med(sel(c["name"], "pyradiomics", cls), "max_rss_kib") for c in cases)
        summary[cls] = pw / rw
        label = "**all**" if cls == "all" else cls
        w(f"| {label} | {fmt_s(rw)} | {fmt_s(pw)} | {ratio(pw, rw)} | {ratio(pc, rc)} | "
          f"{ratio(pe, rw)} | {mib(rr)} | {mib(pr)} |")
    w("")
    below = [c for c in PYRAD_CLASSES if summary[c] < TARGET_SPEEDUP]
    w(f"Overall (all classes together, all cases): **{summary['all']:.1f}×** faster by "
      f"wall time. Classes below the {TARGET_SPEEDUP:g}× target: "
      + (", ".join(below) if below else "none")
      + (" (see *Against the target* below)." if below else "."))
    w("")
    w("## Per case and class")
    w("")
    w("| case | class | radscore wall, median (min–max) | PyRadiomics wall, median "
      "(min–max) | speed-up (wall) | radscore CPU | PyRadiomics CPU | PyRadiomics "
      "`execute()` | radscore peak RSS | PyRadiomics peak RSS |")
    w("|---|---|---|---|---:|---:|---:|---:|---:|---:|")
    for c in cases:
        for cls in ["all"] + PYRAD_CLASSES:
            r, p = sel(c["name"], "radscore", cls), sel(c["name"], "pyradiomics", cls)
            rw, pw = med(r, "wall_s"), med(p, "wall_s")
            ex = [float(x["pyrad_execute_s"]) for x in p]
            label = cls if cls == "all" else f"{cls} / {', '.join(RADSCORE_FAMILIES[cls])}"
            w(f"| {c['name']} | {label} | {fmt_s(rw)} ({spread(walls(r))}) "
              f"| {fmt_s(pw)} ({spread(walls(p))}) | {ratio(pw, rw)} | "
              f"{fmt_s(med(r, 'cpu_s'))} | {fmt_s(med(p, 'cpu_s'))} | "
              f"{fmt_s(statistics.median(ex))} ({spread(ex)}) | "
              f"{mib(med(r, 'max_rss_kib'))} | {mib(med(p, 'max_rss_kib'))} |")
    noop = [r for r in rows if r["tool"] == "python-import-only"]
    w("")
    w(f"Python start-up alone (interpreter + `import radiomics.featureextractor, "
      f"SimpleITK`, no extraction): wall {fmt_s(med(noop, 'wall_s'))} "
      f"({spread(walls(noop))}), peak RSS {mib(med(noop, 'max_rss_kib'))}. It is part of "
      "every PyRadiomics wall time; the `execute()` column leaves it out.")
    w("")
    w("## Value cross-check (last run, all classes)")
    w("")
    w("Not the parity test (that is `docs/pyradiomics-parity.md`), only a check that both "
      "tools computed the same thing on the same voxels: per class, how many PyRadiomics "
      "features radscore reproduces within 1e-6 relative, and the largest relative "
      "difference.")
    w("")
    w("| case | " + " | ".join(PYRAD_CLASSES) + " |")
    w("|---|" + "---|" * len(PYRAD_CLASSES))
    for c in cases:
        rad = radscore_features(work / "out" / f"{c['name']}.radscore.all.json")
        py = json.loads((work / "out" / f"{c['name']}.pyradiomics.all.json")
                        .read_text())["features"]
        cells = []
        for cls in PYRAD_CLASSES:
            n = ok = 0
            worst = 0.0
            for name, b in py.items():
                if not name.startswith(f"original_{cls}_"):
                    continue
                a = rad.get(name)
                if a is None:
                    continue
                n += 1
                d = abs(a) if b == 0 else abs(a - b) / abs(b)
                ok += d <= 1e-6
                worst = max(worst, d)
            cells.append(f"{ok}/{n} (max {worst:.0e})")
        w(f"| {c['name']} | " + " | ".join(cells) + " |")
    w("")
    w("Differences and their causes are analysed in `docs/pyradiomics-parity.md`; the "
      "largest here come from the shape mesh and the PCA axis normalisation listed there.")
    w("")
    w("## Exact commands")
    w("")
    w("```sh")
    w("scripts/bench.sh pyradiomics   # BENCH_RUNS=N runs per variant (default 5)")
    w("```")
    w("")
    w("Per case, class and run (`$W` = the script's temporary directory, where the NRRD "
      "cases are converted to NIfTI and the parameter files `params-CLASS.json` are "
      "written from `BASE_PARAMS` in `bench/bench.py`):")
    w("")
    w("```sh")
    w("/usr/bin/time -v target/release/radscore extract --series IMAGE --mask MASK \\")
    w("    --params $W/params-CLASS.json --naming pyradiomics --out OUT.json --quiet")
    w("/usr/bin/time -v $PYTHON bench/bench.py pyrad --image IMAGE --mask MASK \\")
    w("    --params $W/params-CLASS.json --classes CLASS --out OUT.json")
    w("```")
    w("")
    w("IMAGE/MASK: `$SHARED/ibsi1/ct_phantom/nifti/{image/phantom,mask/mask}.nii.gz` "
      "for the CT phantom (read in place), `$W/CASE/{image,mask}.nii.gz` for brain1, "
      "brain2, breast1.")
    w("")
    w("## Caveats")
    w("")
    for line in CAVEATS:
        w(f"- {line}")
    notes = HERE / "pyradiomics-notes.md"
    if notes.exists():
        w("")
        w(notes.read_text().rstrip("\n"))
    w(END)
    out = Path(args.out)
    previous = out.read_text() if out.exists() else ""
    section = "\n".join(md)
    if BEGIN in previous and END in previous:
        head, rest = previous.split(BEGIN, 1)
        tail = rest.split(END, 1)[1]
        text = head + section + tail
    else:
        # First run with markers: the old unmarked section ran up to the load test.
        marker = "<!-- loadtest:begin -->"
        kept = previous[previous.index(marker):] if marker in previous else ""
        text = section + "\n\n" + kept
    out.write_text(text if text.endswith("\n") else text + "\n")
    print(f"wrote {args.out}")
    for cls in ["all"] + PYRAD_CLASSES:
        print(f"  {cls:>10}: {summary[cls]:.1f}x")


CAVEATS = [
    "Same parameters, not the same feature list: radscore computes every feature of the "
    "families a class needs (its IBSI set, e.g. GLCM with more features than PyRadiomics' "
    "class), PyRadiomics its class; features PyRadiomics has and radscore has not (GLCM "
    "`MCC`, the 2D maximum diameters) are listed in `docs/feature-names.md`. Each tool's "
    "time includes features the other does not compute.",
    "Whole-process wall time favours radscore on small ROIs: a Rust binary starts in "
    "milliseconds, the Python interpreter plus numpy/SimpleITK/PyRadiomics imports take "
    "far longer (the start-up line above). The `execute()` speed-up removes that for "
    "PyRadiomics only; radscore's wall time (start-up, decompressing and reading the NIfTI "
    "files, writing the output) is an upper bound on its extraction time.",
    "Peak RSS of PyRadiomics is dominated by the interpreter and the imported libraries "
    "(see the start-up line); on small ROIs the difference says little about the "
    "algorithms' memory use.",
    "PyRadiomics is the `pyradiomics-bhklab` fork (see versions), not the upstream PyPI "
    "`pyradiomics` 3.1.0, which does not install here (bench/requirements.txt says why). "
    "The fork's feature code is PyRadiomics 3.1 with packaging fixes and C extensions "
    "built locally from its sdist.",
    "radscore computes a lesion's feature families in parallel on rayon's pool (one "
    "thread per core); PyRadiomics' feature code is single-threaded, though SimpleITK may "
    "use threads while reading and cropping (the CPU column counts all threads). The CPU "
    "speed-up is the fairer single-core comparison.",
    "The MR cases (brain1, brain2, breast1) are not CT: radscore treats their intensities "
    "as HU without complaint, which is what a speed benchmark needs.",
]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("--shared", required=True)
    p.add_argument("--work", required=True)
    p = sub.add_parser("pyrad")
    p.add_argument("--image", required=True)
    p.add_argument("--mask", required=True)
    p.add_argument("--params", required=True)
    p.add_argument("--classes", required=True)
    p.add_argument("--out", required=True)
    sub.add_parser("noop")
    p = sub.add_parser("measure")
    p.add_argument("--work", required=True)
    p.add_argument("--radscore", required=True)
    p.add_argument("--python", required=True)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--idle-wait", type=int, default=180,
                   help="seconds to wait at most for the machine to be quiet")
    p.add_argument("--idle-load", type=float, default=1.0,
                   help="1-min load average below which the machine counts as quiet")
    p = sub.add_parser("report")
    p.add_argument("--work", required=True)
    p.add_argument("--out", required=True)
    args = ap.parse_args()
    {"prepare": prepare, "pyrad": pyrad, "noop": noop, "measure": measure,
     "report": report}[args.cmd](args)


if __name__ == "__main__":
    main()

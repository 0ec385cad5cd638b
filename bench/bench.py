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
PYRAD_CLASSES = ["shape", "firstorder", "glcm"]
NRRD_CASES = ["brain1", "brain2", "breast1"]
# radscore families for each PyRadiomics class label ("all" = the three together).
RADSCORE_FAMILIES = {
    "all": ["morphology", "intensity_stats", "glcm"],
    "shape": ["morphology"],
    "firstorder": ["intensity_stats"],
    "glcm": ["glcm"],
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
        # PyRadiomics' fixed-bin-width origin: floor(min / w) * w (imageoperations.getBinEdges).
        lower = math.floor(roi_min / BIN_WIDTH) * BIN_WIDTH
        settings_paths = {}
        for label, families in RADSCORE_FAMILIES.items():
            settings = {
                "schema_version": 1,
                "name": f"bench-{name}-{label}",
                "profiles": {
                    "other": {
                        "families": families,
                        "resegment_range_hu": None,
                        "discretisation": {
                            "method": "fixed_bin_size",
                            "bin_width_hu": BIN_WIDTH,
                            "lower_bound_hu": lower,
                        },
                        "texture_distance_vox": 1,
                        "texture_aggregations": ["3D_avg"],
                        "min_voxels": 27,
                    }
                },
            }
            path = work / f"radscore-settings-{name}-{label}.json"
            path.write_text(json.dumps(settings, indent=2) + "\n")
            settings_paths[label] = str(path)
        cases.append(
            {
                "name": name,
                "source": source,
                "image": str(image),
                "mask": str(mask),
                "settings": settings_paths,
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
    for c in cases:
        print(f"  {c['name']}: grid {c['grid_xyz']}, {c['roi_voxels']} ROI voxels, "
              f"bin origin {c['bin_lower_bound']:g}")


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
        rad_out = out_dir / f"{name}.radscore.{label}.json"
        yield (
            "radscore",
            label,
            [radscore, "extract", "--series", case["image"], "--mask", case["mask"],
             "--lesion", "1:other", "--settings", case["settings"][label], "--out",
             str(rad_out), "--quiet"],
            rad_out,
        )
        py_out = out_dir / f"{name}.pyradiomics.{label}.json"
        yield (
            "pyradiomics",
            label,
            [python, str(HERE / "bench.py"), "pyrad", "--image", case["image"], "--mask",
             case["mask"], "--params", str(HERE / "pyradiomics-params.yaml"), "--classes",
             classes, "--out", str(py_out)],
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


# radscore IBSI tag -> PyRadiomics feature, and whether the definitions agree.
# "same": same definition, values should agree closely; otherwise the note says why not.
CROSS_CHECK = [
    ("morph_volume", "original_shape_MeshVolume", "same"),
    ("morph_vol_approx", "original_shape_VoxelVolume", "same"),
    ("morph_area_mesh", "original_shape_SurfaceArea", "same"),
    ("morph_av", "original_shape_SurfaceVolumeRatio", "same"),
    ("morph_sphericity", "original_shape_Sphericity", "same"),
    ("morph_diam", "original_shape_Maximum3DDiameter", "same"),
    ("morph_pca_maj_axis", "original_shape_MajorAxisLength", "same"),
    ("morph_pca_min_axis", "original_shape_MinorAxisLength", "same"),
    ("morph_pca_least_axis", "original_shape_LeastAxisLength", "same"),
    ("morph_pca_elongation", "original_shape_Elongation", "same"),
    ("morph_pca_flatness", "original_shape_Flatness", "same"),
    ("stat_mean", "original_firstorder_Mean", "same"),
    ("stat_var", "original_firstorder_Variance", "same"),
    ("stat_skew", "original_firstorder_Skewness", "same"),
    ("stat_kurt", "original_firstorder_Kurtosis", "IBSI: excess kurtosis; compared as radscore + 3"),
    ("stat_median", "original_firstorder_Median", "same"),
    ("stat_min", "original_firstorder_Minimum", "same"),
    ("stat_max", "original_firstorder_Maximum", "same"),
    ("stat_range", "original_firstorder_Range", "same"),
    ("stat_p10", "original_firstorder_10Percentile", "same; percentile method may differ"),
    ("stat_p90", "original_firstorder_90Percentile", "same; percentile method may differ"),
    ("stat_iqr", "original_firstorder_InterquartileRange", "same; percentile method may differ"),
    ("stat_mad", "original_firstorder_MeanAbsoluteDeviation", "same"),
    ("stat_rmad", "original_firstorder_RobustMeanAbsoluteDeviation", "same"),
    ("stat_energy", "original_firstorder_Energy", "same (voxelArrayShift 0)"),
    ("stat_rms", "original_firstorder_RootMeanSquared", "same (voxelArrayShift 0)"),
    ("cm_joint_max_3D_avg", "original_glcm_MaximumProbability", "same"),
    ("cm_joint_avg_3D_avg", "original_glcm_JointAverage", "same"),
    ("cm_joint_var_3D_avg", "original_glcm_SumSquares", "same"),
    ("cm_joint_entr_3D_avg", "original_glcm_JointEntropy", "same"),
    ("cm_diff_avg_3D_avg", "original_glcm_DifferenceAverage", "same"),
    ("cm_dissimilarity_3D_avg", "original_glcm_DifferenceAverage", "IBSI: = difference average"),
    ("cm_diff_var_3D_avg", "original_glcm_DifferenceVariance", "same"),
    ("cm_diff_entr_3D_avg", "original_glcm_DifferenceEntropy", "same"),
    ("cm_sum_avg_3D_avg", "original_glcm_SumAverage", "same"),
    ("cm_sum_entr_3D_avg", "original_glcm_SumEntropy", "same"),
    ("cm_energy_3D_avg", "original_glcm_JointEnergy", "same"),
    ("cm_contrast_3D_avg", "original_glcm_Contrast", "same"),
    ("cm_inv_diff_3D_avg", "original_glcm_Id", "same"),
    ("cm_inv_diff_norm_3D_avg", "original_glcm_Idn", "N_g may be counted differently"),
    ("cm_inv_diff_mom_3D_avg", "original_glcm_Idm", "same"),
    ("cm_inv_diff_mom_norm_3D_avg", "original_glcm_Idmn", "N_g may be counted differently"),
    ("cm_inv_var_3D_avg", "original_glcm_InverseVariance", "same"),
    ("cm_corr_3D_avg", "original_glcm_Correlation", "same"),
    ("cm_auto_corr_3D_avg", "original_glcm_Autocorrelation", "same"),
    ("cm_clust_tend_3D_avg", "original_glcm_ClusterTendency", "same"),
    ("cm_sum_var_3D_avg", "original_glcm_ClusterTendency", "IBSI: = cluster tendency"),
    ("cm_clust_shade_3D_avg", "original_glcm_ClusterShade", "same"),
    ("cm_clust_prom_3D_avg", "original_glcm_ClusterProminence", "same"),
    ("cm_info_corr1_3D_avg", "original_glcm_Imc1", "same"),
    ("cm_info_corr2_3D_avg", "original_glcm_Imc2", "same"),
]


def radscore_features(path):
    doc = json.loads(Path(path).read_text())
    lesion = doc["lesions"][0]
    feats = lesion.get("features")
    if isinstance(feats, dict):
        return feats
    if isinstance(feats, list):
        return {f["name"]: f["value"] for f in feats}
    return {}


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

    loads = [float(r["load1"]) for r in rows]
    md = []
    w = md.append
    w("# Benchmark: radscore vs PyRadiomics")
    w("")
    w("_Generated by `scripts/bench.sh` on "
      f"{env['finished']}; do not edit by hand — re-run the script._")
    w("")
    w("Feature extraction for one lesion per case: morphology/shape, intensity statistics/"
      "first order and GLCM, original image, no resampling, no re-segmentation, 3D, fixed "
      "bin width 25, GLCM distance 1 averaged over the 13 directions. Both tools read the "
      "same NIfTI image and mask from disk, one process per extraction, run one after the "
      "other on the same machine.")
    w("")
    w("## Machine and versions")
    w("")
    w(f"- CPU: {cpu_model()}, {os.cpu_count()} logical cores; memory "
      f"{mem_total_gib():.1f} GiB; {platform.system()} {platform.release()}")
    for k, v in versions.items():
        w(f"- {k}: {v}")
    w(f"- Runs: {env['runs']} measured per variant (after one unrecorded warm-up pass), "
      "interleaved case by case and tool by tool; the table gives the median and the "
      "min–max spread.")
    w(f"- Load: {env['idle_wait']}; 1-min load average {env['load_before'].split()[0]} before, "
      f"{env['load_after'].split()[0]} after; over the measured runs "
      f"{min(loads):.2f}–{max(loads):.2f} (median {statistics.median(loads):.2f}) on "
      f"{os.cpu_count()} cores.")
    busy = ", ".join(env["busy_before"]) or "none"
    w(f"- Other processes at ≥ 20 % CPU (ps, averaged over each process's life) when the "
      f"measurement started: {busy}; seen between runs: "
      f"{', '.join(env['busy_during']) or 'none'}. This is a shared 2-core "
      "machine where other engineers compile; wall times under load are inflated for "
      "both tools, which is why CPU time (user+sys) is reported too.")
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
    w("## Results: all three families together, whole process")
    w("")
    w("Wall time is the whole process (start-up, reading the NIfTI files, extraction, "
      "writing the output). Speed-up = PyRadiomics median ÷ radscore median.")
    w("")
    w("| case | radscore wall, median (min–max) | PyRadiomics wall, median (min–max) | "
      "speed-up (wall) | radscore CPU | PyRadiomics CPU | speed-up (CPU) | "
      "radscore peak RSS | PyRadiomics peak RSS |")
    w("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for c in cases:
        r, p = sel(c["name"], "radscore", "all"), sel(c["name"], "pyradiomics", "all")
        rw, pw = med(r, "wall_s"), med(p, "wall_s")
        rc, pc = med(r, "cpu_s"), med(p, "cpu_s")
        w(f"| {c['name']} | {fmt_s(rw)} ({spread([float(x['wall_s']) for x in r])}) | "
          f"{fmt_s(pw)} ({spread([float(x['wall_s']) for x in p])}) | {ratio(pw, rw)} | "
          f"{fmt_s(rc)} | {fmt_s(pc)} | {ratio(pc, rc)} | "
          f"{mib(med(r, 'max_rss_kib'))} | {mib(med(p, 'max_rss_kib'))} |")
    noop = [r for r in rows if r["tool"] == "python-import-only"]
    w("")
    w(f"Python start-up alone (interpreter + `import radiomics.featureextractor, "
      f"SimpleITK`, no extraction): wall {fmt_s(med(noop, 'wall_s'))} "
      f"({spread([float(x['wall_s']) for x in noop])}), peak RSS "
      f"{mib(med(noop, 'max_rss_kib'))}. It is part of every PyRadiomics wall time above; "
      "the `execute()` column of the next table leaves it out.")
    w("")
    w("## Per feature class")
    w("")
    w("Each row is a separate process with only that class enabled: radscore with "
      "`families` set to `morphology`, `intensity_stats` or `glcm`; PyRadiomics with only "
      "`shape`, `firstorder` or `glcm` enabled. The start-up and file-reading cost is in "
      "every row, so the per-class rows do not add up to \"all\". The PyRadiomics "
      "`execute()` column is timed inside the process (`RadiomicsFeatureExtractor.execute`, "
      "which still includes reading the image and mask with SimpleITK and cropping) and "
      "excludes interpreter start-up and imports.")
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
            label = cls if cls == "all" else f"{cls} / {RADSCORE_FAMILIES[cls][0]}"
            w(f"| {c['name']} | {label} | {fmt_s(rw)} ({spread([float(x['wall_s']) for x in r])}) "
              f"| {fmt_s(pw)} ({spread([float(x['wall_s']) for x in p])}) | {ratio(pw, rw)} | "
              f"{fmt_s(med(r, 'cpu_s'))} | {fmt_s(med(p, 'cpu_s'))} | "
              f"{fmt_s(statistics.median(ex))} ({spread(ex)}) | "
              f"{mib(med(r, 'max_rss_kib'))} | {mib(med(p, 'max_rss_kib'))} |")
    w("")
    w("## Value cross-check (last run)")
    w("")
    w("Not an accuracy test (that is `tests/ibsi_features.rs`), only a check that both "
      "tools computed the same thing on the same voxels. Relative difference "
      "= |radscore − PyRadiomics| ÷ |PyRadiomics|.")
    w("")
    w("| feature (radscore / PyRadiomics) | note | "
      + " | ".join(c["name"] for c in cases) + " |")
    w("|---|---|" + "---:|" * len(cases))
    rad = {c["name"]: radscore_features(work / "out" / f"{c['name']}.radscore.all.json")
           for c in cases}
    py = {c["name"]: json.loads((work / "out" / f"{c['name']}.pyradiomics.all.json")
                                .read_text())["features"] for c in cases}
    for rname, pname, note in CROSS_CHECK:
        cells = []
        for c in cases:
            a, b = rad[c["name"]].get(rname), py[c["name"]].get(pname)
            if a is not None and rname == "stat_kurt":
                a += 3.0  # PyRadiomics reports kurtosis, IBSI excess kurtosis
            if a is None or b is None:
                cells.append("missing")
            elif b == 0:
                cells.append(f"{a:.4g} vs 0")
            else:
                cells.append(f"{abs(a - b) / abs(b):.1e}")
        w(f"| `{rname}` / `{pname.removeprefix('original_')}` | {note} | "
          + " | ".join(cells) + " |")
    diffs, values = [], []
    for c in cases:
        r, q = rad[c["name"]], py[c["name"]]
        if "morph_volume" in r and "original_shape_MeshVolume" in q:
            voxel = q["original_shape_VoxelVolume"] / c["roi_voxels"]
            d = (r["morph_volume"] - q["original_shape_MeshVolume"]) / voxel
            values.append(d)
            diffs.append(f"{c['name']} {d:+.4f}")
    w("")
    w("Mesh volume, radscore − PyRadiomics, in voxel volumes: " + ", ".join(diffs) + ".")
    if values and any(abs(v) > 1e-6 for v in values):
        if all(abs(v * 24 - round(v * 24)) < 1e-4 for v in values):
            w("Both build a marching-cubes mesh of the mask. The differences are whole "
              "multiples of 1/24 of a voxel volume, which points at a different "
              "triangulation of some cube configurations, not at spacing or rounding; "
              "which tool is right was not settled here.")
        else:
            w("Both build a marching-cubes mesh of the mask; the differences are not "
              "explained here.")
    n_rad = {c["name"]: len(rad[c["name"]]) for c in cases}
    n_py = {c["name"]: len(py[c["name"]]) for c in cases}
    w("")
    w(f"Feature counts: radscore {sorted(set(n_rad.values()))}, PyRadiomics "
      f"{sorted(set(n_py.values()))} (per case).")
    w("")
    w("## Exact commands")
    w("")
    w("```sh")
    w("scripts/bench.sh            # BENCH_RUNS=N to change the number of runs (default 5)")
    w("```")
    w("")
    w("Per case and run (`$SHARED` = `../shared/data`; `$W` = the script's temporary "
      "directory, where the NRRD cases are converted to NIfTI and the per-case settings "
      "are written):")
    w("")
    w("```sh")
    w("/usr/bin/time -v target/release/radscore extract --series IMAGE --mask MASK \\")
    w("    --lesion 1:other --settings $W/radscore-settings-CASE-all.json --out OUT.json --quiet")
    w("/usr/bin/time -v .venv-bench/bin/python bench/bench.py pyrad --image IMAGE --mask MASK \\")
    w("    --params bench/pyradiomics-params.yaml --classes shape,firstorder,glcm --out OUT.json")
    w("```")
    w("")
    w("IMAGE/MASK: `$SHARED/ibsi1/ct_phantom/nifti/{image/phantom,mask/mask}.nii.gz` "
      "for the CT phantom, `$W/CASE/{image,mask}.nii.gz` for brain1, brain2, breast1. "
      "radscore settings per case (`-all`; `-shape`, `-firstorder`, `-glcm` set "
      "`families` to one family): `{\"families\": [\"morphology\", \"intensity_stats\", "
      "\"glcm\"], \"resegment_range_hu\": null, \"discretisation\": "
      "{\"method\": \"fixed_bin_size\", \"bin_width_hu\": 25, \"lower_bound_hu\": "
      "floor(ROI min / 25) × 25}, \"texture_distance_vox\": 1, \"texture_aggregations\": "
      "[\"3D_avg\"], \"min_voxels\": 27}`; bin origins used: "
      + ", ".join(f"{c['name']} {c['bin_lower_bound']:g}" for c in cases) + ".")
    w("")
    w("## Caveats")
    w("")
    rad_any, py_any = rad[cases[0]["name"]], py[cases[0]["name"]]
    n_fam = {p: sum(k.startswith(p) for k in rad_any) for p in ("morph_", "stat_", "cm_")}
    n_cls = {c: sum(k.startswith(f"original_{c}_") for k in py_any) for c in PYRAD_CLASSES}
    unmatched = sorted(k.removeprefix("original_") for k in py_any
                       if k not in {p for _, p, _ in CROSS_CHECK})
    rad_only = sorted(k for k in rad_any if k not in {r for r, _, _ in CROSS_CHECK})
    feature_set = (
        "Not the same feature set. With these settings radscore computes morphology "
        f"({n_fam['morph_']} features), intensity statistics ({n_fam['stat_']}) and GLCM "
        f"({n_fam['cm_']}) for the `3D_avg` aggregation only (the bundled production "
        "settings also compute `3D_comb`, an extra pass over the merged matrix, and more "
        "families). PyRadiomics computes shape "
        f"({n_cls['shape']}), first order ({n_cls['firstorder']}) and GLCM "
        f"({n_cls['glcm']}). PyRadiomics features with no radscore counterpart: "
        + ", ".join(f"`{u}`" for u in unmatched) + ". radscore features with no "
        "PyRadiomics counterpart: " + ", ".join(f"`{u}`" for u in rad_only) + ". Each "
        "tool's time includes the features the other does not compute."
    )
    for line in [feature_set] + CAVEATS:
        w(f"- {line}")
    w("")
    # Keep the load-test section that scripts/loadtest.sh maintains in the same file.
    out = Path(args.out)
    previous = out.read_text() if out.exists() else ""
    marker = "<!-- loadtest:begin -->"
    kept = "\n\n" + previous[previous.index(marker):] if marker in previous else ""
    out.write_text("\n".join(md) + kept)
    print(f"wrote {args.out}")


CAVEATS = [
    "Bin origin: PyRadiomics' fixed bin width starts at floor(min/25)·25 of the ROI; IBSI "
    "(and radscore by default) starts at the re-segmentation lower bound or the ROI "
    "minimum. The bench passes radscore PyRadiomics' origin per case (`lower_bound_hu`) "
    "so both discretise identically.",
    "GLCM: both symmetric, distance 1, 13 directions, features averaged over directions "
    "(PyRadiomics' default `weightingNorm: None` = IBSI `3D_avg`). PyRadiomics skips "
    "grey levels absent from the ROI when it builds the matrix; that changes no feature "
    "value that is defined from probabilities, but some (e.g. its `Idmn`, `Idn`) use the "
    "number of grey levels, and may count it differently from radscore's IBSI "
    "definitions (see the cross-check rows for `Idn` and `Idmn`).",
    "Whole-process wall time favours radscore on small ROIs: a Rust binary starts in "
    "milliseconds, the Python interpreter plus numpy/SimpleITK/PyRadiomics imports take "
    "far longer (the start-up line above). The `execute()` column removes that for "
    "PyRadiomics; radscore has no in-process timer, so its wall time (which includes "
    "decompressing and reading the NIfTI files) is an upper bound on its extraction time.",
    "Peak RSS of PyRadiomics is dominated by the interpreter and the imported libraries "
    "(see the start-up line); the difference on small ROIs says little about the "
    "algorithms' memory use.",
    "PyRadiomics is the `pyradiomics-bhklab` fork (see versions), not the upstream PyPI "
    "`pyradiomics` 3.1.0, which does not install here (bench/requirements.txt says why). "
    "The fork's feature code is PyRadiomics 3.1 with packaging fixes and C extensions "
    "built locally from its sdist.",
    "radscore computes a lesion's feature families in parallel on rayon's pool (one "
    "thread per core; lesions of a job are parallel too, but these cases have one "
    "lesion); PyRadiomics' feature code is single-threaded, though SimpleITK may use "
    "threads while reading and cropping (the CPU column counts all threads). Neither was "
    "pinned to a core. Runs are sequential; the machine is shared, so the spread matters: "
    "a wide spread means outside load during that variant.",
    "The MR cases (brain1, brain2, breast1) are not CT: radscore treats their intensities "
    "as HU without complaint, which is what a speed benchmark needs, but its CT-oriented "
    "defaults (re-segmentation ranges) are switched off here.",
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

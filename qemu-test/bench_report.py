#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Checks, tabulates and plots the JSON that vdcm_bench writes.

    bench_report.py check FILE        every key present, with a sane value
    bench_report.py table FILE        the human-readable table
    bench_report.py plot FILE STEM    STEM.svg and STEM.txt: creation time
                                      of the k-th ADI against k
    bench_report.py plot-qos FILE STEM  STEM.svg and STEM.txt: three
                                      ADIs' rates as their weights change

Standard library only.
"""

import json
import sys

# Keys that must be positive numbers.
POSITIVE = [
    "adi_create_open_us", "mtty_create_open_us", "adi_close_remove_us",
    "mtty_close_remove_us", "max_adis_per_pf", "adi_desc_per_s",
    "adi_bytes_per_s", "config_read_ns", "bar0_read_ns", "bar0_write_ns",
    "bar0_rw_ns", "mtty_config_read_ns", "mtty_region_read_ns",
    "mtty_region_write_ns", "mtty_region_rw_ns", "reset_us",
    "mtty_reset_us", "irq_latency_us", "fastpath_descriptors",
    "dirty_log_off_bytes_per_s", "dirty_log_on_bytes_per_s",
    "migration_downtime_ms", "migration_total_ms", "migration_stream_bytes",
    "migration_busy_downtime_ms", "migration_busy_total_ms",
    "migration_busy_stream_bytes", "mtty_migration_downtime_ms",
    "mtty_migration_total_ms", "mtty_migration_stream_bytes",
]
# Keys that must be numbers (a memory delta can be noise-negative; a trap
# count is zero when all is well).
NUMBER = ["bytes_per_idle_adi", "slab_bytes_per_idle_adi",
          "adi_bytes_per_idle_dev", "mtty_bytes_per_idle_dev",
          "adi_slab_bytes_per_idle_dev", "mtty_slab_bytes_per_idle_dev",
          "vdcm_own_bytes_per_idle_adi", "vdcm_part_bytes_per_idle_adi",
          "pf_part_bytes_per_idle_adi",
          "fastpath_traps_per_1m_desc", "fastpath_traps", "remove_all_adis_s"]
# Keys that must exist but may be null: the SR-IOV baseline exists only
# in `make bench`'s VM; the direct in-kernel client does not exist yet.
NULLABLE = ["vf_create_open_us", "vf_close_remove_us", "direct_desc_per_s",
            "direct_bytes_per_s", "adi_vs_direct_throughput_ratio",
            "irq_latency_cold_us", "vf_config_read_ns", "vf_bar0_read_ns",
            "vf_reset_us"]
STRINGS = ["vf_baseline", "max_adis_limit"]
RATIOS = ["create_open_adi_vs_mtty", "create_open_adi_vs_vf",
          "config_read_adi_vs_mtty", "region_rw_adi_vs_mtty",
          "reset_adi_vs_mtty", "config_read_adi_vs_vf", "reset_adi_vs_vf",
          "throughput_adi_vs_direct", "dirty_log_on_vs_off",
          "migration_downtime_adi_vs_mtty", "migration_busy_downtime_adi_vs_mtty"]
# The QoS phase's figures with a goal (in qos_goals, and a verdict in
# qos_goals_met): null only when their measurement failed (qos_errors says
# why). The goals are reported, not required: TCG timing decides them.
QOS_FIGURES = ["qos_jain_equal", "qos_weighted_error_pct", "qos_noisy_p99_ratio",
               "qos_rate_error_pct", "qos_overhead_ratio"]
# Objects of figures per ADI count ("2", "8", "64"; --quick: "2", "8").
QOS_BY_N = ["qos_jain_equal_by_n", "qos_jain_mixed_by_n", "qos_jain_equal_dedicated_by_n",
            "qos_jain_equal_shared_by_n", "qos_jain_shared_vs_dedicated_by_n",
            "qos_jain_equal_desc_per_s_by_n"]
# Other QoS keys that must exist (null or a number).
QOS_NULLABLE = ["qos_rate_set", "qos_rate_achieved", "qos_rate_unlimited",
                "qos_noisy_aggressor_desc_per_s"]


def is_num(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def check(d):
    errs = []
    for k in POSITIVE:
        if not (is_num(d.get(k)) and d[k] > 0):
            errs.append(f"{k} = {d.get(k, '<missing>')!r}, want a positive number")
    for k in NUMBER:
        if not is_num(d.get(k)):
            errs.append(f"{k} = {d.get(k, '<missing>')!r}, want a number")
    for k in NULLABLE:
        if k not in d or not (d[k] is None or (is_num(d[k]) and d[k] > 0)):
            errs.append(f"{k} = {d.get(k, '<missing>')!r}, want null or a positive number")
    for k in STRINGS:
        if not isinstance(d.get(k), str):
            errs.append(f"{k} missing or not a string")
    scal = d.get("create_latency_scaling")
    if not (isinstance(scal, list) and scal and all(is_num(v) and v > 0 for v in scal)):
        errs.append("create_latency_scaling is not a non-empty list of positive numbers")
    elif is_num(d.get("max_adis_per_pf")) and len(scal) != d["max_adis_per_pf"]:
        errs.append(f"create_latency_scaling has {len(scal)} entries, max_adis_per_pf is {d['max_adis_per_pf']}")
    ratios = d.get("ratios")
    if not isinstance(ratios, dict):
        errs.append("ratios missing")
    else:
        for k in RATIOS:
            if k not in ratios or not (ratios[k] is None or (is_num(ratios[k]) and ratios[k] > 0)):
                errs.append(f"ratios.{k} = {ratios.get(k, '<missing>')!r}")
    if is_num(d.get("fastpath_traps")) and d["fastpath_traps"] != 0:
        errs.append(f"the fast path trapped {d['fastpath_traps']} times")
    errs.extend(check_qos(d))
    return errs


def check_qos(d):
    errs = []
    qerrs = d.get("qos_errors")
    if not isinstance(qerrs, dict):
        errs.append("qos_errors missing or not an object")
        qerrs = {}
    for what, e in qerrs.items():
        errs.append(f"qos {what} failed: {e}")
    goals, met = d.get("qos_goals"), d.get("qos_goals_met")
    if not isinstance(goals, dict) or not isinstance(met, dict):
        errs.append("qos_goals or qos_goals_met missing")
        goals, met = {}, {}
    for k in QOS_FIGURES:
        v = d.get(k, "<missing>")
        if not (is_num(v) and v >= 0) and not (v is None and qerrs):
            errs.append(f"{k} = {v!r}, want a number (null only with qos_errors)")
        g = goals.get(k)
        if not (isinstance(g, dict) and g and all(x in ("min", "max") and is_num(y)
                                                 for x, y in g.items())):
            errs.append(f"qos_goals.{k} = {g!r}, want {{min|max: number}}")
        if k not in met or met[k] not in (True, False, None) or (met[k] is None) != (v is None):
            errs.append(f"qos_goals_met.{k} = {met.get(k, '<missing>')!r} for {k} = {v!r}")
    for k in QOS_BY_N:
        v = d.get(k)
        if not isinstance(v, dict) or not all(n.isdigit() and (x is None or is_num(x))
                                              for n, x in v.items()):
            errs.append(f"{k} = {v!r}, want an object of numbers by ADI count")
        elif not qerrs and (not v or any(x is None for x in v.values())):
            errs.append(f"{k} = {v!r}: a count without its figure")
    for k in QOS_NULLABLE:
        if k not in d or not (d[k] is None or is_num(d[k])):
            errs.append(f"{k} = {d.get(k, '<missing>')!r}, want null or a number")
    for k in ["qos_noisy_p99_us", "qos_noisy_p50_us"]:
        v = d.get(k)
        if not (isinstance(v, dict) and all(x is None or is_num(x)
                                            for x in (v.get("alone", 0), v.get("with_aggressor", 0)))
                and "alone" in v and "with_aggressor" in v):
            errs.append(f"{k} = {v!r}, want {{alone, with_aggressor}}")
    shares = d.get("qos_weighted_shares")
    if not (isinstance(shares, list) and all(is_num(x) for x in shares)
            and (len(shares) == 3 or qerrs)):
        errs.append(f"qos_weighted_shares = {shares!r}, want three numbers")
    if not isinstance(d.get("qos_overhead_desc_per_s"), dict):
        errs.append("qos_overhead_desc_per_s missing")
    tl = d.get("qos_timeline")
    if not isinstance(tl, list) or not all(
            isinstance(p, dict) and is_num(p.get("t_s")) and len(p.get("weights", [])) == 3
            and len(p.get("rates", [])) == 3 and all(is_num(x) and x >= 0 for x in p["rates"])
            for p in tl) or (not tl and "timeline" not in qerrs):
        errs.append(f"qos_timeline = {str(tl)[:80]}..., want samples of three weights and rates")
    return errs


def svg_frame(w, h, ml, mb, mt, mr, ymax, y):
    """The start of a plot: the SVG element, a white background, the two
    axes and five labelled horizontal grid lines from 0 to ymax (y maps a
    value to its row)."""
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
             f'<rect width="{w}" height="{h}" fill="white"/>',
             f'<line x1="{ml}" y1="{h - mb}" x2="{w - mr}" y2="{h - mb}" stroke="black"/>',
             f'<line x1="{ml}" y1="{mt}" x2="{ml}" y2="{h - mb}" stroke="black"/>']
    for i in range(5):
        v = ymax * i / 4
        parts.append(f'<text x="{ml - 5}" y="{y(v) + 4:.1f}" text-anchor="end">{v:.0f}</text>')
        parts.append(f'<line x1="{ml}" y1="{y(v):.1f}" x2="{w - mr}" y2="{y(v):.1f}" stroke="#ddd"/>')
    return parts


def plot_qos(d, stem):
    """STEM.svg and STEM.txt: each ADI's descriptors/s over time while
    the weights change (qos_timeline)."""
    tl = d.get("qos_timeline") or []
    if not tl:
        return
    colors = ["#c30", "#36c", "#393"]
    w, h, ml, mb, mt, mr = 640, 360, 70, 40, 30, 20
    tmax = tl[-1]["t_s"] or 1
    ymax = max(max(p["rates"]) for p in tl) * 1.1 or 1
    step = tl[1]["t_s"] - tl[0]["t_s"] if len(tl) > 1 else 0
    x = lambda t: ml + t / tmax * (w - ml - mr)
    y = lambda v: h - mb - v / ymax * (h - mb - mt)
    parts = svg_frame(w, h, ml, mb, mt, mr, ymax, y)
    prev = None
    for p in tl:
        if p["weights"] != prev:
            t0 = max(p["t_s"] - step, 0)
            parts.append(f'<line x1="{x(t0):.1f}" y1="{mt}" x2="{x(t0):.1f}" y2="{h - mb}" stroke="#999" stroke-dasharray="3,3"/>')
            parts.append(f'<text x="{x(t0) + 3:.1f}" y="{mt - 8}">{":".join(str(v) for v in p["weights"])}</text>')
            prev = p["weights"]
    for i in range(3):
        pts = " ".join(f'{x(p["t_s"]):.1f},{y(p["rates"][i]):.1f}' for p in tl)
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{colors[i]}" stroke-width="2"/>')
        parts.append(f'<text x="{w - mr}" y="{mt + 12 + 12 * i}" text-anchor="end" fill="{colors[i]}">ADI {"ABC"[i]}</text>')
    parts.append(f'<text x="{(ml + w - mr) / 2}" y="{h - 5}" text-anchor="middle">seconds (weights A:B:C above; TCG-emulated)</text>')
    parts.append(f'<text x="12" y="{mt + (h - mb - mt) / 2}" transform="rotate(-90 12 {mt + (h - mb - mt) / 2})" text-anchor="middle">descriptors/s</text>')
    parts.append("</svg>")
    with open(stem + ".svg", "w") as f:
        f.write("\n".join(parts) + "\n")
    top = max(max(p["rates"]) for p in tl) or 1
    lines = ["descriptors/s of three saturating ADIs A, B, C as their weights change live"]
    for p in tl:
        ws = ":".join(str(v) for v in p["weights"])
        bars = "  ".join(f'{"ABC"[i]} {"#" * round(r / top * 20):<20}' for i, r in enumerate(p["rates"]))
        lines.append(f'{p["t_s"]:5.1f} s  {ws:>11}  {bars}')
    with open(stem + ".txt", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if isinstance(v, float) and v < 0.1:
        s = f"{v:.2g}"
    elif isinstance(v, float) and v < 100:
        s = f"{v:.2f}"
    else:
        s = f"{v:,.0f}"
    return f"{s} {unit}".strip()


def table(d):
    d = dict(d)
    r = dict(d["ratios"])
    for k in POSITIVE + NUMBER + NULLABLE:
        d.setdefault(k, None)
    for k in RATIOS:
        r.setdefault(k, None)
    rows = [
        ("create + open (us)", d["adi_create_open_us"], d["mtty_create_open_us"],
         d["vf_create_open_us"], r["create_open_adi_vs_mtty"]),
        ("close + remove (us)", d["adi_close_remove_us"], d["mtty_close_remove_us"],
         d["vf_close_remove_us"], None),
        ("config read, 4 B (ns)", d["config_read_ns"], d["mtty_config_read_ns"],
         d["vf_config_read_ns"], r["config_read_adi_vs_mtty"]),
        ("BAR0 read (ns)", d["bar0_read_ns"], d["mtty_region_read_ns"],
         d["vf_bar0_read_ns"], None),
        ("BAR0 write (ns)", d["bar0_write_ns"], d["mtty_region_write_ns"],
         None, None),
        ("BAR0 read+write avg (ns)", d["bar0_rw_ns"], d["mtty_region_rw_ns"],
         None, r["region_rw_adi_vs_mtty"]),
        ("VFIO_DEVICE_RESET (us)", d["reset_us"], d["mtty_reset_us"],
         d["vf_reset_us"], r["reset_adi_vs_mtty"]),
        ("migration downtime (ms)", d["migration_downtime_ms"],
         d["mtty_migration_downtime_ms"], None, r["migration_downtime_adi_vs_mtty"]),
        ("  busy ADI", d["migration_busy_downtime_ms"], None, None,
         r["migration_busy_downtime_adi_vs_mtty"]),
        ("migration total (ms)", d["migration_total_ms"],
         d["mtty_migration_total_ms"], None, None),
        ("  busy ADI", d["migration_busy_total_ms"], None, None, None),
        ("migration stream (B)", d["migration_stream_bytes"],
         d["mtty_migration_stream_bytes"], None, None),
        ("memory per idle dev (B)", d["adi_bytes_per_idle_dev"],
         d["mtty_bytes_per_idle_dev"], None, r.get("idle_bytes_adi_vs_mtty")),
        ("  of it slab (B)", d["adi_slab_bytes_per_idle_dev"],
         d["mtty_slab_bytes_per_idle_dev"], None, None),
    ]
    out = [f"{'side by side (medians)':<26} {'ADI':>12} {'mtty':>12} {'SR-IOV VF':>12} {'ADI/mtty':>9}"]
    for name, a, m, v, q in rows:
        out.append(f"{name:<26} {fmt(a):>12} {fmt(m):>12} {fmt(v):>12} {fmt(q):>9}")
    for label, key in [("create + open", "create_open_adi_vs_vf"),
                       ("config read", "config_read_adi_vs_vf"),
                       ("reset", "reset_adi_vs_vf")]:
        if r.get(key) is not None:
            out.append(f"{'ADI/VF ' + label:<26} {fmt(r[key]):>12}")
    out.append("")
    out.append("ADI only")
    for label, key, unit in [
        ("max ADIs per PF (open)", "max_adis_per_pf", ""),
        ("  limit", "max_adis_limit", ""),
        ("bytes per idle ADI", "bytes_per_idle_adi", "B"),
        ("slab bytes per idle ADI", "slab_bytes_per_idle_adi", "B"),
        ("own allocations per idle ADI", "vdcm_own_bytes_per_idle_adi", "B"),
        ("  of them the VDCM's", "vdcm_part_bytes_per_idle_adi", "B"),
        ("  of them the PF's", "pf_part_bytes_per_idle_adi", "B"),
        ("fast-path traps per 1M desc", "fastpath_traps_per_1m_desc", ""),
        ("descriptors run", "fastpath_descriptors", ""),
        ("descriptors/s (NOP)", "adi_desc_per_s", "/s"),
        ("bytes/s (64 KiB MEMMOVE)", "adi_bytes_per_s", "B/s"),
        ("  DMA log off", "dirty_log_off_bytes_per_s", "B/s"),
        ("  DMA log on", "dirty_log_on_bytes_per_s", "B/s"),
        ("direct client desc/s", "direct_desc_per_s", ""),
        ("ADI/direct throughput", "adi_vs_direct_throughput_ratio", ""),
        ("IRQ latency warm (us)", "irq_latency_us", ""),
        ("IRQ latency cold (us)", "irq_latency_cold_us", ""),
    ]:
        v = d.get(key)
        out.append(f"  {label:<30} {v if isinstance(v, str) else fmt(v, unit)}")
        if key == "dirty_log_on_bytes_per_s":
            out.append(f"  {'  on/off':<30} {fmt(r['dirty_log_on_vs_off'])}")
    s = d["create_latency_scaling"]
    if s:
        qs = [s[0], s[len(s) // 4], s[len(s) // 2], s[3 * len(s) // 4], s[-1]]
        out.append(f"  {'create latency at k=1,N/4,N/2,3N/4,N':<30} "
                   + " ".join(f"{v:.0f}" for v in qs) + " us")
    out.append("")
    out.extend(qos_table(d))
    out.append("(TCG-emulated VM: absolute figures are not hardware figures; compare the ratios)")
    return "\n".join(out)


def goal_text(g):
    if not isinstance(g, dict):
        return ""
    return " ".join(f"{'>=' if k == 'min' else '<='} {v:g}" for k, v in g.items())


def by_n_text(v, prec=4):
    if not isinstance(v, dict) or not v:
        return "n/a"
    return "  ".join(f"{n}: {'n/a' if x is None else f'{x:.{prec}f}'}" for n, x in v.items())


def qos_table(d):
    """The QoS figures: each with its goal and whether it was met."""
    if "qos_goals" not in d:
        return ["QoS: not measured (a bench.json from before the QoS phase)"]
    goals, met = d.get("qos_goals", {}), d.get("qos_goals_met", {})
    verdict = {True: "met", False: "NOT met", None: "n/a"}
    out = [f"{'QoS (same run; off = default knobs)':<34} {'figure':>12} {'goal':>10}  verdict"]
    rows = [
        ("Jain index, equal weights (worst)", "qos_jain_equal", 4),
        ("weighted 1:2:4, worst error (%)", "qos_weighted_error_pct", 2),
        ("noisy neighbour p99 with/alone", "qos_noisy_p99_ratio", 2),
        ("max_rate error (%)", "qos_rate_error_pct", 2),
        ("QoS on/off throughput", "qos_overhead_ratio", 3),
    ]
    for label, key, prec in rows:
        v = d.get(key)
        fig = "n/a" if v is None else f"{v:.{prec}f}"
        out.append(f"  {label:<32} {fig:>12} {goal_text(goals.get(key)):>10}  "
                   f"{verdict.get(met.get(key), 'n/a')}")
        if key == "qos_jain_equal":
            out.append(f"    {'mixed 1q + shared, by n':<30} {by_n_text(d.get('qos_jain_mixed_by_n'))}")
            out.append(f"    {'  shared/dedicated rate':<30} "
                       f"{by_n_text(d.get('qos_jain_shared_vs_dedicated_by_n'), 3)}")
            out.append(f"    {'dedicated only, by n':<30} "
                       f"{by_n_text(d.get('qos_jain_equal_dedicated_by_n'))}")
            out.append(f"    {'shared only, by n':<30} {by_n_text(d.get('qos_jain_equal_shared_by_n'))}")
        elif key == "qos_weighted_error_pct":
            sh = d.get("qos_weighted_shares") or []
            out.append(f"    {'shares (want .143 .286 .571)':<30} "
                       + " ".join(f"{x:.3f}" for x in sh))
        elif key == "qos_noisy_p99_ratio":
            for k in ["qos_noisy_p99_us", "qos_noisy_p50_us"]:
                v = d.get(k) or {}
                out.append(f"    {k[10:13] + ' alone / with (us)':<30} "
                           f"{fmt(v.get('alone'))} / {fmt(v.get('with_aggressor'))}")
        elif key == "qos_rate_error_pct":
            out.append(f"    {'set / achieved (desc/s)':<30} "
                       f"{fmt(d.get('qos_rate_set'))} / {fmt(d.get('qos_rate_achieved'))}")
        elif key == "qos_overhead_ratio":
            o = d.get("qos_overhead_desc_per_s") or {}
            for side in ["off", "on"]:
                v = sorted(o.get(side, []))
                if v:
                    out.append(f"    {side + ' slices (desc/s)':<30} median "
                               f"{fmt(v[len(v) // 2])}, {fmt(v[0])} to {fmt(v[-1])} "
                               f"in {len(v)}")
    for what, e in (d.get("qos_errors") or {}).items():
        out.append(f"  error in {what}: {e}")
    return out


def buckets(s, n):
    """Medians of n equal slices of s: (k at slice middle, median)."""
    n = min(n, len(s))
    out = []
    for i in range(n):
        a, b = i * len(s) // n, (i + 1) * len(s) // n
        part = sorted(s[a:b])
        out.append(((a + b) / 2 + 0.5, part[len(part) // 2]))
    return out


def plot(d, stem):
    s = d["create_latency_scaling"]
    # SVG: every point, and the median of 32 slices as a line.
    w, h, ml, mb, mt, mr = 640, 360, 60, 40, 20, 20
    ymax = sorted(s)[int(0.99 * (len(s) - 1))] * 1.1 or 1
    x = lambda k: ml + (k - 1) / max(len(s) - 1, 1) * (w - ml - mr)
    y = lambda v: h - mb - min(v, ymax) / ymax * (h - mb - mt)
    parts = svg_frame(w, h, ml, mb, mt, mr, ymax, y)
    for i in range(5):
        k = 1 + (len(s) - 1) * i / 4
        parts.append(f'<text x="{x(k):.1f}" y="{h - mb + 15}" text-anchor="middle">{k:.0f}</text>')
    parts.append(f'<text x="{(ml + w - mr) / 2}" y="{h - 5}" text-anchor="middle">k (ADIs already open + 1)</text>')
    parts.append(f'<text x="12" y="{mt + (h - mb - mt) / 2}" transform="rotate(-90 12 {mt + (h - mb - mt) / 2})" text-anchor="middle">create of the k-th ADI (us)</text>')
    for k, v in enumerate(s, 1):
        parts.append(f'<circle cx="{x(k):.1f}" cy="{y(v):.1f}" r="1.2" fill="#8ab"/>')
    pts = " ".join(f"{x(k):.1f},{y(v):.1f}" for k, v in buckets(s, 32))
    parts.append(f'<polyline points="{pts}" fill="none" stroke="#c30" stroke-width="2"/>')
    parts.append(f'<text x="{w - mr}" y="{mt + 10}" text-anchor="end">dots: each ADI; line: median of 32 slices (TCG-emulated)</text>')
    parts.append("</svg>")
    with open(stem + ".svg", "w") as f:
        f.write("\n".join(parts) + "\n")
    # ASCII: one row per slice, a bar per median.
    rows = buckets(s, 16)
    top = max(v for _, v in rows) or 1
    lines = [f"create latency of the k-th ADI (median per slice of {len(s)} ADIs), us"]
    for k, v in rows:
        lines.append(f"k~{k:>6.0f} {v:>9.0f} |" + "#" * max(1, round(v / top * 50)))
    with open(stem + ".txt", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def main():
    cmd, path = sys.argv[1], sys.argv[2]
    with open(path) as f:
        d = json.load(f)
    if cmd == "check":
        errs = check(d)
        for e in errs:
            print(e)
        sys.exit(1 if errs else 0)
    elif cmd == "table":
        print(table(d))
    elif cmd == "plot":
        plot(d, sys.argv[3])
    elif cmd == "plot-qos":
        plot_qos(d, sys.argv[3])
    else:
        sys.exit(f"unknown command {cmd}")


if __name__ == "__main__":
    main()

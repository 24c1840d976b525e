"""The machine a benchmark ran on, in one record (issue 20: "record the CPU model
and flags and the kernel variant").

A guest's ``model name`` is often just "AMD EPYC", which hides whether the cores
are Zen 3 (AVX2 only), Zen 4 (AVX-512 on 256-bit halves) or Zen 5 (full-width
AVX-512) -- the kinds docs/PERFORMANCE.md compares.  The CPUID family / model in
``/proc/cpuinfo`` tell them apart; ``microarchitecture`` names the AMD ones it
knows (others: "").  Nothing here selects a kernel: dispatch reads LLVM's host
features (``numba_kernels.HAVE_*``), so this module is description only.
"""
from __future__ import annotations

import os
import platform

#: the ISA flags docs/PERFORMANCE.md reports (a subset of /proc/cpuinfo's)
FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8")

#: AMD family 0x19 models by microarchitecture (AMD's published model ranges)
_ZEN3_19 = set(range(0x00, 0x10)) | set(range(0x20, 0x60))
_ZEN4_19 = set(range(0x10, 0x20)) | set(range(0x60, 0x80)) | set(range(0xA0, 0xB0))


def microarchitecture(vendor: str, family: int, model: int) -> str:
    """"Zen 3" / "Zen 4" / "Zen 5" / "Zen 2" for AMD CPUID family and model, else ""."""
    if vendor != "AuthenticAMD" or family < 0:
        return ""
    if family == 0x1A:
        return "Zen 5"
    if family == 0x19:
        return "Zen 3" if model in _ZEN3_19 else "Zen 4" if model in _ZEN4_19 else ""
    if family == 0x17:
        return "Zen 2" if model >= 0x30 else "Zen / Zen+"
    return ""


def parse_cpuinfo(text: str) -> dict:
    """The first processor of a /proc/cpuinfo text -> the record of ``describe``."""
    fields = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break
            continue
        k, _, v = line.partition(":")
        fields.setdefault(k.strip(), v.strip())

    def num(k):
        try:
            return int(fields.get(k, ""), 0)
        except ValueError:
            return -1
    vendor = fields.get("vendor_id", "")
    fam, mod = num("cpu family"), num("model")
    flags = set(fields.get("flags", "").split())
    return {"cpu": fields.get("model name", "?") or "?", "vendor": vendor, "family": fam, "model": mod,
            "stepping": num("stepping"), "microarchitecture": microarchitecture(vendor, fam, mod),
            "isa": [f for f in FLAGS if f in flags]}


def describe() -> dict:
    """This machine: cpu (model name), vendor, family, model, stepping,
    microarchitecture, isa (the FLAGS present), cpus."""
    try:
        with open("/proc/cpuinfo") as f:
            rec = parse_cpuinfo(f.read())
    except OSError:
        rec = {"cpu": platform.processor() or platform.machine() or "?", "vendor": "", "family": -1,
               "model": -1, "stepping": -1, "microarchitecture": "", "isa": []}
    rec["cpus"] = os.cpu_count()
    return rec


def line(rec: dict = None) -> str:
    """One line for a benchmark's header, e.g. ``AMD EPYC (Zen 5, family 26 model 2), 2 cpus,
    avx2 fma avx512f ...``."""
    rec = describe() if rec is None else rec
    kind = ", ".join(x for x in (rec["microarchitecture"],
                                 f"family {rec['family']} model {rec['model']}" if rec["family"] >= 0 else "") if x)
    return f"{rec['cpu']}{f' ({kind})' if kind else ''}, {rec['cpus']} cpus, {' '.join(rec['isa']) or 'no listed ISA flags'}"

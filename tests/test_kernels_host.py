"""fxlic.kernels.host: the machine record of the benchmarks and `fxlic info`."""
from fxlic.kernels import host

_ZEN5 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 26
model\t\t: 2
model name\t: AMD EPYC
stepping\t: 1
flags\t\t: fpu sse2 avx avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 avx_vnni

processor\t: 1
vendor_id\t: GenuineIntel
"""


def test_parse_cpuinfo_reads_the_first_processor():
    r = host.parse_cpuinfo(_ZEN5)
    assert (r["cpu"], r["vendor"], r["family"], r["model"], r["stepping"]) == ("AMD EPYC", "AuthenticAMD", 26, 2, 1)
    assert r["microarchitecture"] == "Zen 5"
    assert r["isa"] == ["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16"]


def test_microarchitecture_of_the_amd_kinds_measured():
    amd = "AuthenticAMD"
    assert host.microarchitecture(amd, 25, 1) == "Zen 3"      # Milan
    assert host.microarchitecture(amd, 25, 0x11) == "Zen 4"   # Genoa (docs/PERFORMANCE.md, sessions 13-14)
    assert host.microarchitecture(amd, 25, 0xA0) == "Zen 4"   # Bergamo
    assert host.microarchitecture(amd, 26, 2) == "Zen 5"
    assert host.microarchitecture(amd, 25, 0x90) == ""        # not in the published ranges
    assert host.microarchitecture("GenuineIntel", 6, 143) == ""
    assert host.microarchitecture(amd, -1, -1) == ""


def test_odd_cpuinfo_gives_unknowns_not_errors():
    r = host.parse_cpuinfo("garbage without colons\nmodel\t: x\n")
    assert r["family"] == -1 and r["model"] == -1 and r["microarchitecture"] == "" and r["isa"] == []
    assert host.parse_cpuinfo("")["cpu"] == "?"


def test_describe_and_line_on_this_machine():
    r = host.describe()
    assert r["cpus"] >= 1 and isinstance(r["isa"], list)
    s = host.line(r)
    assert r["cpu"] in s and f"{r['cpus']} cpus" in s

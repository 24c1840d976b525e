/*
 * fxlic_common.h -- the parts of the C port shared by the decoder
 * (fxlic_dec.c) and the encoder (fxlic_enc.c): SPEC R1-R3 rounding, the X1
 * codebooks and the O1/O2 stages, .npy reading and .npy/.mem dumping, the
 * model directory (arch.txt, the seven stored per-layer fields, the derived
 * A2/O shifts), one layer (I1 decode, C1/C2 loops, O1-O4), SPEC E1 (means,
 * scales, table indexes), SPEC O5 (offset latents: the symbol rule, the
 * levels on the 2^-G grid, the model's latents flag, offset_q and grid_bits),
 * SPEC O6 (HA0's y on the 2^-H grid, H from HA0's in_exp), the entropy
 * tables and the CRC-32.
 *
 * Header only (every function static), so that each program stays one
 * translation unit: `gcc -std=c99 ... fxlic_dec.c` (or fxlic_enc.c) builds
 * it alone; both programs use every function defined here.
 */
#ifndef FXLIC_COMMON_H
#define FXLIC_COMMON_H

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#define MAXL 64
#define NAMELEN 32
#define PATHLEN 4096
/* the spec this port implements (docs/SPEC.md V); a model directory made for
 * fxlic-spec-1.1 is read as an integer-latent model, one made for
 * fxlic-spec-1.2 as a model whose offset grid is G = 2 (no latents/grid_bits),
 * one made for fxlic-spec-1.3 as a model whose HA0 reads O3's integer y (SPEC
 * O6 with H = 0; a 1.3 directory whose HA0 in_exp says H > 0 is refused) */
#define FXLIC_SPEC_VERSION "fxlic-spec-1.4"
#define FXLIC_SPEC_VERSION_1_3 "fxlic-spec-1.3"
#define FXLIC_SPEC_VERSION_1_2 "fxlic-spec-1.2"
#define FXLIC_SPEC_VERSION_OLD "fxlic-spec-1.1"

static const char *g_prog = "fxlic"; /* the program name in messages */

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", g_prog);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

/* snprintf that refuses to truncate (paths) */
static int xsnprintf(char *buf, size_t n, const char *fmt, ...)
{
    va_list ap;
    int r;
    va_start(ap, fmt);
    r = vsnprintf(buf, n, fmt, ap);
    va_end(ap);
    if (r < 0 || (size_t)r >= n) die("string too long: %.60s...", buf);
    return r;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) die("out of memory (%lu bytes)", (unsigned long)n);
    return p;
}

/* ------------------------------------------------------------------ */
/* SPEC R1-R3: rounding, shifts, saturation                            */
/* ------------------------------------------------------------------ */

/* arithmetic (flooring) right shift; C99 leaves >> of a negative value
 * implementation-defined, so it is written with complements. 0 <= s <= 63. */
static int64_t asr(int64_t a, int s)
{
    return a >= 0 ? (a >> s) : ~((~a) >> s);
}

/* R1: RHU(a, s) = floor(a / 2^s + 1/2) */
static int64_t rhu(int64_t a, int s)
{
    if (s < 0) die("R1 with a negative shift");
    if (s == 0) return a;
    if (s >= 64) return 0;
    return asr(a, s) + (asr(a, s - 1) & 1);
}

/* R2: RQ(a, s) = RHU(a, s) for s > 0, a * 2^-s otherwise (exact; A4 keeps it in 64 bits) */
static int64_t rq(int64_t a, int s)
{
    if (s > 0) return rhu(a, s);
    return a * ((int64_t)1 << (-s));
}

static int64_t sat(int64_t a, int64_t lo, int64_t hi)
{
    return a < lo ? lo : (a > hi ? hi : a);
}

/* ------------------------------------------------------------------ */
/* SPEC X1: the four activation codebooks (grid 2^-9 of so)            */
/* ------------------------------------------------------------------ */

typedef struct { int lo, hi, k; } seg_t;
typedef struct { int nseg; seg_t seg[3]; int top; int level[256]; } codebook_t;
static codebook_t CB[4];

static void init_codebooks(void)
{
    /* (lo, hi, step) from the table of X1; k = log2(step) */
    static const int tab[4][3][3] = {
        {{0, 512, 2}, {0, 0, 0}, {0, 0, 0}},
        {{0, 64, 2}, {64, 128, 1}, {128, 448, 2}},
        {{0, 128, 1}, {128, 384, 2}, {0, 0, 0}},
        {{0, 192, 1}, {192, 320, 2}, {0, 0, 0}},
    };
    static const int nseg[4] = {1, 3, 2, 2};
    int m, j, v;
    for (m = 0; m < 4; m++) {
        int n = 0;
        CB[m].nseg = nseg[m];
        for (j = 0; j < nseg[m]; j++) {
            CB[m].seg[j].lo = tab[m][j][0];
            CB[m].seg[j].hi = tab[m][j][1];
            CB[m].seg[j].k = tab[m][j][2] == 2 ? 1 : 0;
        }
        CB[m].top = tab[m][nseg[m] - 1][1] - 2; /* top level: range end minus one step of 2 */
        for (j = 0; j < nseg[m]; j++)
            for (v = CB[m].seg[j].lo; v < CB[m].seg[j].hi; v += tab[m][j][2])
                if (v <= CB[m].top) {
                    if (n >= 256) die("codebook %d has more than 256 levels", m);
                    CB[m].level[n++] = v;
                }
        if (n != 256) die("codebook %d has %d levels, not 256", m, n);
    }
}

/* Q3: code of a level of codebook m (the position in the sorted level list) */
static int code_of_level(int m, int64_t L)
{
    int lo = 0, hi = 255;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        if (CB[m].level[mid] < L) lo = mid + 1; else hi = mid;
    }
    if (CB[m].level[lo] != L) die("level %lld is not in codebook %d", (long long)L, m);
    return lo;
}

/* O1: ReLU, Q2 on the mux codebook, Q3 code */
static int stage_o1(int64_t acc, int s, int m)
{
    int64_t a = acc > 0 ? acc : 0, L;
    int j, seg = 0;
    if (s <= 0) { a = a * ((int64_t)1 << (-s)); s = 0; }
    for (j = 0; j < CB[m].nseg; j++) /* |t| >= lo  <=>  (|a| >> s) >= lo */
        if ((s >= 63 ? 0 : (a >> s)) >= CB[m].seg[j].lo) seg = j;
    L = rhu(a, s + CB[m].seg[seg].k) * ((int64_t)1 << CB[m].seg[seg].k);
    L = sat(L, 0, CB[m].top);
    return code_of_level(m, L);
}

/* O5 (offset latents): symbol = SAT8(RHU(acc * 2^(F + E) - off * 2^(F - G), F)),
 * F = max(G, -E), E the accumulator exponent, off on the 2^-G grid (G = the
 * model's latents/grid_bits); the model check (o5_check) keeps both terms and
 * their difference in int64 */
static int o5_frac_bits(int64_t E, int G)
{
    return E >= -G ? G : (int)(-E);
}

static int64_t stage_o5(int64_t acc, int64_t E, int64_t off, int G)
{
    int F = o5_frac_bits(E, G);
    int64_t a = acc * ((int64_t)1 << (F + E)), b = off * ((int64_t)1 << (F - G));
    return sat(rhu(a - b, F), -128, 127);
}

/* O5 level on the 2^-G grid: symbol * 2^G + off */
static int64_t o5_level(int64_t symbol, int64_t off, int G)
{
    return symbol * ((int64_t)1 << G) + off;
}

/* O6 (spec 1.4): the y HA0 reads, on the 2^-H grid, from AT3's accumulator at
 * exponent E: yH = SAT_{8+H}(RQ(acc, -H - E)); the loader (read_latents) keeps
 * -H - E in R2's [-31, 62], so the left shift of RQ stays in int64 (int32 acc) */
static int64_t stage_o6(int64_t acc, int64_t E, int H)
{
    int64_t b = (int64_t)1 << (7 + H);
    return sat(rq(acc, (int)(-H - E)), -b, b - 1);
}

/* O2: signed LQ, LeakyReLU(1/8) folded into the shift of negative values */
static int stage_o2(int64_t acc, int s, int leaky)
{
    int64_t v = (leaky && acc < 0) ? rq(acc, s + 3) : rq(acc, s);
    return (int)sat(v, -128, 127);
}

/* ------------------------------------------------------------------ */
/* arrays and .npy / .mem files                                        */
/* ------------------------------------------------------------------ */

typedef struct {
    int ndim;
    long shape[8];
    long n;
    int64_t *v;
} arr_t;

static arr_t arr_new(int ndim, const long *shape)
{
    arr_t a;
    int i;
    memset(&a, 0, sizeof a);
    a.ndim = ndim;
    a.n = 1;
    for (i = 0; i < ndim; i++) { a.shape[i] = shape[i]; a.n *= shape[i]; }
    a.v = (int64_t *)xmalloc(sizeof(int64_t) * (size_t)a.n);
    memset(a.v, 0, sizeof(int64_t) * (size_t)a.n);
    return a;
}

static arr_t arr3(long c, long h, long w)
{
    long s[3];
    s[0] = c; s[1] = h; s[2] = w;
    return arr_new(3, s);
}

static unsigned char *read_file(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    long n;
    if (!f) die("%s: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
        die("%s: cannot get its size", path);
    buf = (unsigned char *)xmalloc((size_t)n + 1);
    if (n && fread(buf, 1, (size_t)n, f) != (size_t)n) die("%s: read error", path);
    buf[n] = 0;
    fclose(f);
    *len = n;
    return buf;
}

/* the "model_hash" of a model directory's manifest.json ("sha256:" and 64 hex
 * digits, the content hash of docs/MODEL_FORMAT.md 4) into buf; NULL when the
 * directory has no manifest.json or the manifest no model_hash */
static const char *model_dir_hash(const char *mdir, char *buf, size_t n)
{
    char path[PATHLEN];
    const char *key = "\"model_hash\": \"", *p;
    size_t k = 0;
    long len;
    unsigned char *b;
    FILE *f;
    xsnprintf(path, sizeof path, "%s/manifest.json", mdir);
    f = fopen(path, "rb");
    if (!f) return NULL;
    fclose(f);
    b = read_file(path, &len);
    p = strstr((const char *)b, key);
    if (p) {
        p += strlen(key);
        while (p[k] && p[k] != '"' && k + 1 < n) k++;
        if (p[k] != '"') p = NULL;
    }
    if (p) {
        memcpy(buf, p, k);
        buf[k] = 0;
    }
    free(b);
    return p ? buf : NULL;
}

/* .npy version 1.0/2.0, little-endian integer dtypes, C order */
static arr_t read_npy(const char *path)
{
    long len, i;
    unsigned char *b = read_file(path, &len);
    unsigned long hlen, off;
    char hdr[4096], *p, kind;
    int size;
    arr_t a;
    long shape[8];
    int ndim = 0;
    const unsigned char *d;
    if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0) die("%s: not a .npy file", path);
    if (b[6] == 1) { hlen = b[8] | ((unsigned long)b[9] << 8); off = 10; }
    else if (b[6] == 2 || b[6] == 3) {
        hlen = b[8] | ((unsigned long)b[9] << 8) | ((unsigned long)b[10] << 16) | ((unsigned long)b[11] << 24);
        off = 12;
    } else die("%s: .npy version %d", path, b[6]);
    if (hlen >= sizeof hdr || off + hlen > (unsigned long)len) die("%s: bad .npy header", path);
    memcpy(hdr, b + off, hlen);
    hdr[hlen] = 0;
    p = strstr(hdr, "'descr':");
    if (!p) die("%s: no descr", path);
    p = strchr(p + 8, '\'');
    if (!p) die("%s: bad descr", path);
    if (p[1] != '<' && p[1] != '|') die("%s: only little-endian arrays are read", path);
    kind = p[2];
    size = atoi(p + 3);
    if ((kind != 'i' && kind != 'u' && kind != 'b') || (size != 1 && size != 2 && size != 4 && size != 8))
        die("%s: dtype %c%d is not an integer type", path, kind, size);
    if (strstr(hdr, "'fortran_order': True")) die("%s: Fortran order", path);
    p = strstr(hdr, "'shape':");
    if (!p) die("%s: no shape", path);
    p = strchr(p, '(');
    if (!p) die("%s: bad shape", path);
    p++;
    while (*p && *p != ')') {
        char *e;
        long v = strtol(p, &e, 10);
        if (e == p) { p++; continue; }
        if (ndim >= 8) die("%s: too many dimensions", path);
        shape[ndim++] = v;
        p = e;
    }
    a = arr_new(ndim, shape);
    d = b + off + hlen;
    if ((long)(off + hlen) + a.n * size > len) die("%s: truncated data", path);
    for (i = 0; i < a.n; i++) {
        const unsigned char *q = d + (size_t)i * size;
        uint64_t u = 0;
        int k;
        for (k = size - 1; k >= 0; k--) u = (u << 8) | q[k];
        if (kind == 'i' && size < 8 && (u >> (8 * size - 1)) & 1) u |= ~(uint64_t)0 << (8 * size);
        a.v[i] = (int64_t)u;
    }
    free(b);
    return a;
}

static void mkdirs(const char *path)
{
    char tmp[PATHLEN];
    size_t i, n = strlen(path);
    if (n >= sizeof tmp) die("path too long");
    memcpy(tmp, path, n + 1);
    for (i = 1; i <= n; i++) {
        if (tmp[i] == '/' || tmp[i] == 0) {
            char c = tmp[i];
            tmp[i] = 0;
            if (mkdir(tmp, 0755) != 0 && errno != EEXIST) die("mkdir %s: %s", tmp, strerror(errno));
            tmp[i] = c;
        }
    }
}

static int g_mem = 0; /* dump format: 0 .npy, 1 .mem */
static char g_dump[PATHLEN];

/* write a tensor as name.npy or name.mem with element type ("i1", "u1", "i4") */
static void dump(const char *name, const arr_t *a, const char *dt)
{
    char path[PATHLEN], dir[PATHLEN], *slash;
    FILE *f;
    long i;
    int size = atoi(dt + 1), k;
    xsnprintf(path, sizeof path, "%s/%s.%s", g_dump, name, g_mem ? "mem" : "npy");
    strcpy(dir, path);
    slash = strrchr(dir, '/');
    if (slash) { *slash = 0; mkdirs(dir); }
    f = fopen(path, "wb");
    if (!f) die("%s: %s", path, strerror(errno));
    if (g_mem) {
        for (i = 0; i < a->n; i++) {
            uint64_t u = (uint64_t)a->v[i];
            for (k = 2 * size - 1; k >= 0; k--) fputc("0123456789abcdef"[(u >> (4 * k)) & 15], f);
            fputc('\n', f);
        }
    } else {
        char h[512], sh[256];
        int n, pad, j;
        sh[0] = 0;
        for (j = 0; j < a->ndim; j++) {
            char t[32];
            xsnprintf(t, sizeof t, "%ld, ", a->shape[j]);
            strcat(sh, t);
        }
        if (a->ndim == 1) sh[strlen(sh) - 1] = 0;      /* "(n,)" */
        else if (a->ndim > 1) sh[strlen(sh) - 2] = 0;  /* "(a, b)" */
        n = xsnprintf(h, sizeof h, "{'descr': '%c%c%d', 'fortran_order': False, 'shape': (%s), }",
                     size == 1 ? '|' : '<', dt[0], size, sh);
        pad = 64 - (10 + n + 1) % 64;
        for (j = 0; j < pad; j++) h[n++] = ' ';
        h[n++] = '\n';
        fwrite("\x93NUMPY\x01\x00", 1, 8, f);
        fputc(n & 255, f);
        fputc(n >> 8, f);
        fwrite(h, 1, (size_t)n, f);
        for (i = 0; i < a->n; i++) {
            uint64_t u = (uint64_t)a->v[i];
            for (k = 0; k < size; k++) fputc((int)((u >> (8 * k)) & 255), f);
        }
    }
    if (fclose(f) != 0) die("%s: write error", path);
}

/* ------------------------------------------------------------------ */
/* model: architecture (arch.txt) and stored per-layer fields          */
/* ------------------------------------------------------------------ */

typedef struct {
    char name[NAMELEN], op[8], act[8], src[NAMELEN], out[8];
    int k, stride, cin, cout;
    arr_t w_codes, w_lut, w_exp, bias, in_exp, out_exp, mux;
    /* derived (SPEC A2, O) */
    int64_t E;          /* min input exponent */
    int64_t *d;         /* alignment shift per input channel */
    int64_t *eacc;      /* accumulator exponent per output channel */
    int64_t *s;         /* requantization shift per output channel */
    int loaded;
    /* SPEC O5 (set by read_latents): o5 = the output stage is O5 around
     * offq[o]; in_kind = how the input is decoded: 0 I1 codes, 1 offset
     * latent code * 2^G + offq[c] (HS0, factorized ST0), 2 per-element levels
     * (ST0 of an offset-latent hyperprior), 3 O6 levels on the 2^-H grid (HA0
     * of a model with H > 0: read directly, d_c = 0, no decode table) */
    int o5, in_kind, grid;  /* grid: the model's G */
    const int64_t *offq;
    int o6;             /* SPEC O6: H > 0 and the layer outputs y (AT3): its output is O6's yH */
    int hgrid;          /* SPEC O6: the model's H */
} layer_t;

typedef struct {
    char name[64], kind[16];
    int N, M, pad;
    int nl;
    layer_t L[MAXL];
    int offset;         /* SPEC O5: offset latents (arch.txt "latents offset") */
    int grid;           /* SPEC O5: G, latents/grid_bits (2 for a spec-1.2 directory) */
    arr_t offset_q;     /* latents/offset_q: medians on the 2^-G grid */
    int hgrid;          /* SPEC O6: H = -(HA0's in_exp), 0..6; 0 = O3's integer y */
} model_t;

static int find_layer(const model_t *m, const char *name)
{
    int i;
    for (i = 0; i < m->nl; i++)
        if (strcmp(m->L[i].name, name) == 0) return i;
    return -1;
}

static void read_arch(model_t *m, const char *dir)
{
    char path[PATHLEN], line[512];
    FILE *f;
    xsnprintf(path, sizeof path, "%s/arch.txt", dir);
    f = fopen(path, "r");
    if (!f) die("%s: %s", path, strerror(errno));
    m->nl = 0;
    m->name[0] = 0;
    m->offset = 0;
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        if (strncmp(line, "arch ", 5) == 0) {
            if (sscanf(line + 5, "%63s %15s %d %d %d", m->name, m->kind, &m->N, &m->M, &m->pad) != 5)
                die("%s: bad arch line", path);
        } else if (strncmp(line, "latents ", 8) == 0) {
            char v[16];
            if (sscanf(line + 8, "%15s", v) != 1) die("%s: bad latents line", path);
            if (strcmp(v, "offset") == 0) m->offset = 1;
            else if (strcmp(v, "integer") == 0) m->offset = 0;
            else die("%s: unknown latents %s", path, v);
        } else if (strncmp(line, "layer ", 6) == 0) {
            layer_t *L;
            if (m->nl >= MAXL) die("%s: too many layers", path);
            L = &m->L[m->nl];
            memset(L, 0, sizeof *L);
            if (sscanf(line + 6, "%31s %7s %d %d %d %d %7s %31s %7s", L->name, L->op, &L->k, &L->stride,
                       &L->cin, &L->cout, L->act, L->src, L->out) != 9)
                die("%s: bad layer line: %s", path, line);
            m->nl++;
        } else die("%s: unknown line: %s", path, line);
    }
    fclose(f);
    if (!m->name[0] || m->nl == 0) die("%s: no architecture", path);
}

static int g_wbin = 0; /* model fields from: 0 .npy, 1 .bin */
static int g_hwc = 0;  /* .bin layout: 0 chw, 1 hwc (channels last) */

/* The options both programs take: -f npy|mem (dumps), -w npy|bin (model fields),
   -l chw|hwc (.bin layout). Returns 1 when argv[*i] is one of them (*i then indexes
   its value), 0 when it is not, -1 when its value is not one of the two. */
static int parse_io_option(int argc, char **argv, int *i)
{
    static const struct { const char *flag, *off, *on; int *var; } opts[] = {
        {"-f", "npy", "mem", &g_mem}, {"-w", "npy", "bin", &g_wbin}, {"-l", "chw", "hwc", &g_hwc}};
    size_t k;
    for (k = 0; k < sizeof opts / sizeof opts[0]; k++) {
        if (strcmp(argv[*i], opts[k].flag) != 0 || *i + 1 >= argc) continue;
        ++*i;
        if (strcmp(argv[*i], opts[k].on) == 0) *opts[k].var = 1;
        else if (strcmp(argv[*i], opts[k].off) == 0) *opts[k].var = 0;
        else return -1;
        return 1;
    }
    return 0;
}

/* raw little-endian .bin of n elements of `size` bytes, signed or not */
static arr_t read_bin(const char *path, int is_signed, int size, long n)
{
    long len, i, shape[1];
    unsigned char *b = read_file(path, &len);
    arr_t a;
    if (len != n * size) die("%s: %ld bytes, expected %ld elements of %d bytes", path, len, n, size);
    shape[0] = n;
    a = arr_new(1, shape);
    for (i = 0; i < n; i++) {
        const unsigned char *q = b + (size_t)i * size;
        uint64_t u = 0;
        int k;
        for (k = size - 1; k >= 0; k--) u = (u << 8) | q[k];
        if (is_signed && size < 8 && (u >> (8 * size - 1)) & 1) u |= ~(uint64_t)0 << (8 * size);
        a.v[i] = (int64_t)u;
    }
    free(b);
    return a;
}

/* the stored dtype of each field in the model directory (docs/VECTORS.md 3) */
static void field_type(const char *what, int *is_signed, int *size)
{
    *is_signed = strcmp(what, "mux") != 0;
    *size = strcmp(what, "w_lut") == 0 ? 2 : strcmp(what, "bias") == 0 ? 4 : 1;
}

static arr_t read_param(const char *dir, const char *layer, const char *what, long n)
{
    char path[PATHLEN];
    arr_t a;
    if (g_wbin) {
        int sg, sz;
        field_type(what, &sg, &sz);
        xsnprintf(path, sizeof path, "%s/layers/%s/%s.bin", dir, layer, what);
        return read_bin(path, sg, sz, n);
    }
    xsnprintf(path, sizeof path, "%s/layers/%s/%s.npy", dir, layer, what);
    a = read_npy(path);
    if (n >= 0 && a.n != n) die("%s: %ld elements, expected %ld", path, a.n, n);
    return a;
}

/* w_codes of a channels-last .bin (O, KY, KX, C) into O, C, KY, KX */
static void weights_from_hwc(layer_t *L)
{
    long o, c, y, x, C = L->cin, K = L->k;
    int64_t *v = (int64_t *)xmalloc(sizeof(int64_t) * (size_t)L->w_codes.n);
    for (o = 0; o < L->cout; o++)
        for (c = 0; c < C; c++)
            for (y = 0; y < K; y++)
                for (x = 0; x < K; x++)
                    v[((o * C + c) * K + y) * K + x] = L->w_codes.v[((o * K + y) * K + x) * C + c];
    free(L->w_codes.v);
    L->w_codes.v = v;
}

static void load_layer(layer_t *L, const char *dir)
{
    int c, o;
    L->w_codes = read_param(dir, L->name, "w_codes", (long)L->cout * L->cin * L->k * L->k);
    if (g_wbin && g_hwc) weights_from_hwc(L);
    L->w_lut = read_param(dir, L->name, "w_lut", 256);
    L->w_exp = read_param(dir, L->name, "w_exp", L->cout);
    L->bias = read_param(dir, L->name, "bias", L->cout);
    L->in_exp = read_param(dir, L->name, "in_exp", L->cin);
    L->out_exp = read_param(dir, L->name, "out_exp", L->cout);
    L->mux = read_param(dir, L->name, "mux", L->cout);
    /* A2: E = min_c e_c, d_c = e_c - E, Eacc[o] = E + ew[o]; O: s[o] = eo[o] - Eacc[o] */
    L->E = L->in_exp.v[0];
    for (c = 1; c < L->cin; c++)
        if (L->in_exp.v[c] < L->E) L->E = L->in_exp.v[c];
    L->d = (int64_t *)xmalloc(sizeof(int64_t) * (size_t)L->cin);
    L->eacc = (int64_t *)xmalloc(sizeof(int64_t) * (size_t)L->cout);
    L->s = (int64_t *)xmalloc(sizeof(int64_t) * (size_t)L->cout);
    for (c = 0; c < L->cin; c++) {
        L->d[c] = L->in_exp.v[c] - L->E;
        if (L->d[c] > 30) die("%s: alignment shift %lld > 30 (A4)", L->name, (long long)L->d[c]);
    }
    for (o = 0; o < L->cout; o++) {
        L->eacc[o] = L->E + L->w_exp.v[o];
        L->s[o] = L->out_exp.v[o] - L->eacc[o];
        if (L->s[o] < -31 || L->s[o] > 62) die("%s: shift outside [-31, 62] (A4)", L->name);
        if (L->mux.v[o] < 0 || L->mux.v[o] > 3) die("%s: mux outside 0..3", L->name);
        if (L->bias.v[o] < -2147483647LL || L->bias.v[o] > 2147483647LL) die("%s: bias outside int32", L->name);
    }
    L->loaded = 1;
}

/* the output stage of a layer (SPEC L table): O1 ReLU+NLQ, O2 signed LQ, O3 latent, O4 pixel */
static int out_rule(const layer_t *L)
{
    if (strcmp(L->out, "act") == 0) return strcmp(L->act, "relu") == 0 ? 1 : 2;
    if (strcmp(L->out, "ms") == 0) return 2;
    if (strcmp(L->out, "y") == 0 || strcmp(L->out, "z") == 0) return 3;
    return 4;
}

/* ------------------------------------------------------------------ */
/* one layer: I1 decode, C1/C2 accumulation, O1-O4                     */
/* ------------------------------------------------------------------ */

/* the layer reads the latent y (stored y, decoded with + mu, SPEC M1) */
static int is_y(const char *src)
{
    return strcmp(src, "y_hat") == 0 || strcmp(src, "y") == 0;
}

/* I1: aligned level V of input channel c, code q.  mu: mean-reduction offsets
 * (only for a layer reading y_hat).  Sources: x (pixels, F4), y_hat / y,
 * z_hat, or a layer. */
static int64_t input_level(const model_t *m, const layer_t *L, int c, int64_t q, const int64_t *mu)
{
    int64_t level;
    if (strcmp(L->src, "x") == 0) {                        /* F4: pixel p has level p */
        if (q < 0 || q > 255) die("%s: pixel %lld out of range", L->name, (long long)q);
        level = q;
    } else if (L->in_kind == 2) level = q;            /* O5: already a level (ST0, hyperprior) */
    else if (L->in_kind == 3) level = q;              /* O6: HA0's yH, already a level on 2^-H */
    else if (L->in_kind == 1) level = o5_level(q, L->offq[c], L->grid);   /* O5: code * 2^G + offset_q[c] */
    else if (strcmp(L->src, "z_hat") == 0) level = q;
    else if (is_y(L->src)) level = q + mu[c];   /* "y_hat" (or "y": the same stored latent) */
    else {
        int p = find_layer(m, L->src);
        const layer_t *P;
        if (p < 0) die("%s: unknown source %s", L->name, L->src);
        P = &m->L[p];
        if (out_rule(P) == 1) {
            if (q < 0 || q > 255) die("%s: unsigned code %lld out of range", L->name, (long long)q);
            level = CB[P->mux.v[c]].level[q];
        } else level = q;
    }
    return level * ((int64_t)1 << L->d[c]);
}

static int64_t wlevel(const layer_t *L, long idx)
{
    int64_t code = L->w_codes.v[idx];
    if (code < -128 || code > 127) die("%s: weight code out of int8", L->name);
    return L->w_lut.v[code + 128];
}

/* in_mu: mu of the input (a layer reading y_hat), out_mu: mu of the output
 * (O3 of AT3, the encoder's y); NULL for none */
static void run_layer(const model_t *m, const layer_t *L, const arr_t *in, const int64_t *in_mu,
                      const int64_t *out_mu, arr_t *acc_out, arr_t *codes_out)
{
    long C = in->shape[0], H = in->shape[1], W = in->shape[2], Ho, Wo;
    int p = L->k / 2, k = L->k, S = L->stride, rule = out_rule(L);
    long o, c, ky, kx, y, x, i;
    arr_t V, acc, out;
    if (C != L->cin) die("%s: input has %ld channels, expected %d", L->name, C, L->cin);
    V = arr3(C, H, W);
    for (c = 0; c < C; c++)
        for (i = 0; i < H * W; i++) V.v[c * H * W + i] = input_level(m, L, (int)c, in->v[c * H * W + i], in_mu);
    if (strcmp(L->op, "conv") == 0) {   /* C1 */
        Ho = (H + 2 * p - k) / S + 1;
        Wo = (W + 2 * p - k) / S + 1;
        acc = arr3(L->cout, Ho, Wo);
        for (o = 0; o < L->cout; o++) {
            int64_t *A = acc.v + o * Ho * Wo;
            for (i = 0; i < Ho * Wo; i++) A[i] = L->bias.v[o];
            for (c = 0; c < C; c++)
                for (ky = 0; ky < k; ky++)
                    for (kx = 0; kx < k; kx++) {
                        int64_t w = wlevel(L, ((o * C + c) * k + ky) * k + kx);
                        const int64_t *X = V.v + c * H * W;
                        if (w == 0) continue;
                        for (y = 0; y < Ho; y++) {
                            long iy = S * y + ky - p;
                            if (iy < 0 || iy >= H) continue;
                            for (x = 0; x < Wo; x++) {
                                long ix = S * x + kx - p;
                                if (ix < 0 || ix >= W) continue;
                                A[y * Wo + x] += w * X[iy * W + ix];
                            }
                        }
                    }
        }
    } else {                            /* C2: scatter, output 2H x 2W */
        Ho = 2 * H;
        Wo = 2 * W;
        acc = arr3(L->cout, Ho, Wo);
        for (o = 0; o < L->cout; o++) {
            int64_t *A = acc.v + o * Ho * Wo;
            for (i = 0; i < Ho * Wo; i++) A[i] = L->bias.v[o];
            for (c = 0; c < C; c++)
                for (ky = 0; ky < k; ky++)
                    for (kx = 0; kx < k; kx++) {
                        int64_t w = wlevel(L, ((o * C + c) * k + ky) * k + kx);
                        const int64_t *X = V.v + c * H * W;
                        if (w == 0) continue;
                        for (y = 0; y < H; y++) {
                            long oy = 2 * y - p + ky;
                            if (oy < 0 || oy >= Ho) continue;
                            for (x = 0; x < W; x++) {
                                long ox = 2 * x - p + kx;
                                if (ox < 0 || ox >= Wo) continue;
                                A[oy * Wo + ox] += w * X[y * W + x];
                            }
                        }
                    }
        }
    }
    /* A1: every accumulator lies in int32 */
    for (i = 0; i < acc.n; i++)
        if (acc.v[i] < -2147483647LL - 1 || acc.v[i] > 2147483647LL)
            die("%s: accumulator %lld outside int32", L->name, (long long)acc.v[i]);
    out = arr3(L->cout, Ho, Wo);
    for (o = 0; o < L->cout; o++) {
        int s = (int)L->s[o];
        for (i = 0; i < Ho * Wo; i++) {
            int64_t a = acc.v[o * Ho * Wo + i], v;
            switch (rule) {
            case 1: v = stage_o1(a, s, (int)L->mux.v[o]); break;
            case 2: v = stage_o2(a, s, strcmp(L->act, "leaky") == 0); break;
            case 3:
                if (L->o5) v = stage_o5(a, L->eacc[o], L->offq[o], L->grid);      /* O5 */
                else if (L->o6) v = stage_o6(a, L->eacc[o], L->hgrid);          /* O6 (encoder) */
                else v = sat(rq(a, s) - (out_mu ? out_mu[o] : 0), -128, 127); /* O3 (encoder) */
                break;
            default: v = sat(rq(a, s), 0, 255); break;                        /* O4 */
            }
            out.v[o * Ho * Wo + i] = v;
        }
    }
    free(V.v);
    *acc_out = acc;
    *codes_out = out;
}

/* the layer's input codes are unsigned (pixels, F4; ReLU codes, O1) */
static int src_unsigned(const model_t *m, const layer_t *L)
{
    int p;
    if (strcmp(L->src, "x") == 0) return 1;
    if (strcmp(L->src, "z_hat") == 0 || is_y(L->src)) return 0;
    p = find_layer(m, L->src);
    return p >= 0 && out_rule(&m->L[p]) == 1;
}

/* ------------------------------------------------------------------ */
/* SPEC O5: offset latents (model property)                            */
/* ------------------------------------------------------------------ */

/* the mean-channel exponent e of HS5 channel M + c maps a code q to the
 * mean RQ(q, -(e + G)) on the 2^-G grid (SPEC O5 / E1 with F = G) */
static int64_t o5_mean(int64_t q, int64_t e, int G)
{
    return rq(q, -(int)(e + G));
}

static int find_out(const model_t *m, const char *out)
{
    int i;
    for (i = 0; i < m->nl; i++)
        if (strcmp(m->L[i].out, out) == 0) return i;
    return -1;
}

/* [lo, hi] of the offset (2^-G grid) over all channels of the latent a layer
 * outputs (y or z): offset_q, or for the y of a hyperprior the means of the HS5
 * codes -128 and 127 (SPEC O5, I2); HS5 must be loaded for the latter */
static void o5_offset_range(const model_t *m, const layer_t *L, int64_t *lo, int64_t *hi)
{
    long c;
    if (strcmp(m->kind, "hyperprior") == 0 && strcmp(L->out, "y") == 0) {
        const layer_t *H = &m->L[find_out(m, "ms")];
        if (!H->loaded) die("%s: the means need %s's exponents", L->name, H->name);
        *lo = o5_mean(-128, H->out_exp.v[m->M], m->grid);
        *hi = o5_mean(127, H->out_exp.v[m->M], m->grid);
        for (c = 0; c < m->M; c++) {
            int64_t a = o5_mean(-128, H->out_exp.v[m->M + c], m->grid);
            int64_t b = o5_mean(127, H->out_exp.v[m->M + c], m->grid);
            if (a < *lo) *lo = a;
            if (b > *hi) *hi = b;
        }
        return;
    }
    *lo = *hi = m->offset_q.v[0];
    for (c = 1; c < m->offset_q.n; c++) {
        if (m->offset_q.v[c] < *lo) *lo = m->offset_q.v[c];
        if (m->offset_q.v[c] > *hi) *hi = m->offset_q.v[c];
    }
}

/* the stored dtype of an O5 level input (ST0 of a hyperprior): int16 when the
 * level range 2^G * [-128, 127] + [offset lo, hi] fits, else int32 (docs/VECTORS.md 2) */
static const char *level_dtype(const model_t *m, const layer_t *L)
{
    int64_t lo, hi;
    o5_offset_range(m, &m->L[find_out(m, "y")], &lo, &hi);
    (void)L;
    return (o5_level(-128, lo, m->grid) >= -32768 && o5_level(127, hi, m->grid) <= 32767) ? "i2" : "i4";
}

/* the layer reading the given source (HA0 reads "y"); -1 for none */
static int find_src(const model_t *m, const char *src)
{
    int i;
    for (i = 0; i < m->nl; i++)
        if (strcmp(m->L[i].src, src) == 0) return i;
    return -1;
}

/* the model directory has the stored field `what` of layer `layer` (.npy or, with -w bin, .bin) */
static int param_exists(const char *dir, const char *layer, const char *what)
{
    char path[PATHLEN];
    FILE *f;
    xsnprintf(path, sizeof path, "%s/layers/%s/%s.%s", dir, layer, what, g_wbin ? "bin" : "npy");
    f = fopen(path, "rb");
    if (!f) return 0;
    fclose(f);
    return 1;
}

/* SPEC O6: H = -(HA0's input exponent), one value for every channel, 0..6 (the
 * model's HA0 in_exp; HA0 need not be loaded: the decoder reads only in_exp, and
 * a directory without HA0's fields (no h_a) counts as H = 0) */
static int ha_grid_bits(const model_t *m, const char *mdir)
{
    int a = find_src(m, "y"), H;
    const layer_t *A;
    arr_t e;
    long c;
    if (a < 0) return 0;
    A = &m->L[a];
    if (A->loaded) e = A->in_exp;
    else if (param_exists(mdir, A->name, "in_exp")) e = read_param(mdir, A->name, "in_exp", A->cin);
    else return 0;
    if (e.n < 1) die("%s: in_exp is empty", A->name);
    for (c = 1; c < e.n; c++)
        if (e.v[c] != e.v[0])
            die("%s: in_exp differs between channels (SPEC O6: HA0 reads y at one exponent -H)", A->name);
    if (e.v[0] > 0 || e.v[0] < -6)
        die("%s: in_exp %lld, HA0 reads y on the 2^-H grid with H in 0..6 (SPEC O6)", A->name, (long long)e.v[0]);
    H = (int)-e.v[0];
    if (!A->loaded) free(e.v);
    return H;
}

/* after read_arch: the spec version of the model directory (manifest.json, if
 * any), latents/offset_q of an offset-latent model, every layer's O5 role and
 * the O6 grid of HA0's y (SPEC O6 loader checks) */
static void read_latents(model_t *m, const char *mdir)
{
    char path[PATHLEN];
    FILE *f;
    int i, hyper = strcmp(m->kind, "hyperprior") == 0;
    int spec = 0;   /* 4, 3, 2, 1: spec 1.4, 1.3, 1.2, 1.1 (manifest.json); 0: no manifest */
    const char *coded = hyper ? "z" : "y";  /* the latent of the factorized tables */
    static const char *const spec_name[5] = {"", FXLIC_SPEC_VERSION_OLD, FXLIC_SPEC_VERSION_1_2,
                                             FXLIC_SPEC_VERSION_1_3, FXLIC_SPEC_VERSION};
    xsnprintf(path, sizeof path, "%s/manifest.json", mdir);
    f = fopen(path, "rb");
    if (f) {
        long len;
        unsigned char *b;
        const char *p;
        fclose(f);
        b = read_file(path, &len);
        p = strstr((const char *)b, "\"spec_version\": \"");
        if (p) {
            p += strlen("\"spec_version\": \"");
            if (strncmp(p, FXLIC_SPEC_VERSION "\"", strlen(FXLIC_SPEC_VERSION) + 1) == 0) spec = 4;
            else if (strncmp(p, FXLIC_SPEC_VERSION_1_3 "\"", strlen(FXLIC_SPEC_VERSION_1_3) + 1) == 0) spec = 3;
            else if (strncmp(p, FXLIC_SPEC_VERSION_1_2 "\"", strlen(FXLIC_SPEC_VERSION_1_2) + 1) == 0) spec = 2;
            else if (!m->offset && strncmp(p, FXLIC_SPEC_VERSION_OLD "\"", strlen(FXLIC_SPEC_VERSION_OLD) + 1) == 0)
                spec = 1;
            else
                die("%s: the model directory was made for another spec (this port implements %s)", path,
                    FXLIC_SPEC_VERSION);
        }
        free(b);
    }
    memset(&m->offset_q, 0, sizeof m->offset_q);
    m->grid = 2;
    if (m->offset) {
        int p = find_out(m, coded);
        long c;
        int64_t omax;
        if (p < 0) die("the model has no %s", coded);
        xsnprintf(path, sizeof path, "%s/latents/grid_bits.npy", mdir);
        f = fopen(path, "rb");
        if (f) {   /* spec 1.3 or later, G != 2; absent: G = 2 (every spec-1.2 directory) */
            arr_t g;
            fclose(f);
            if (spec == 2) die("%s: a spec-1.2 model directory has no grid_bits", path);
            g = read_npy(path);
            if (g.n != 1 || g.v[0] < 3 || g.v[0] > 6)
                die("%s: grid_bits must be one value in 3..6 (SPEC O5; G = 2 has no file)", path);
            m->grid = (int)g.v[0];
            free(g.v);
        }
        xsnprintf(path, sizeof path, "%s/latents/offset_q.npy", mdir);
        m->offset_q = read_npy(path);
        if (m->offset_q.n != m->L[p].cout) die("%s: %ld offsets, expected %d", path, m->offset_q.n, m->L[p].cout);
        omax = (int64_t)127 << m->grid;
        for (c = 0; c < m->offset_q.n; c++)
            if (m->offset_q.v[c] < -omax || m->offset_q.v[c] > omax)
                die("%s: offset outside +-%lld (SPEC O5)", path, (long long)omax);
    }
    for (i = 0; i < m->nl; i++) {
        layer_t *L = &m->L[i];
        L->o5 = m->offset && strcmp(L->out, coded) == 0;
        L->offq = m->offset_q.v;
        L->grid = m->grid;
        L->in_kind = 0;
        if (m->offset && (strcmp(L->src, "z_hat") == 0 || (!hyper && strcmp(L->src, "y_hat") == 0))) L->in_kind = 1;
        if (m->offset && hyper && strcmp(L->src, "y_hat") == 0) L->in_kind = 2;
    }
    /* SPEC O6: H > 0 only in an offset-latent hyperprior and only from spec 1.4
     * (files of 1.3 and earlier have H = 0); -H - Eacc[o] of AT3 within R2's [-31, 62] */
    m->hgrid = ha_grid_bits(m, mdir);
    if (m->hgrid > 0) {
        int p = find_out(m, "y");
        long o;
        if (!(m->offset && hyper))
            die("%s: HA0 reads y on the 2^-%d grid (SPEC O6), allowed only in an offset-latent hyperprior", mdir,
                m->hgrid);
        if (spec != 0 && spec != 4)
            die("%s/manifest.json: HA0 reads y on the 2^-%d grid (SPEC O6), which needs %s; the directory says %s",
                mdir, m->hgrid, FXLIC_SPEC_VERSION, spec_name[spec]);
        if (p < 0) die("the model has no y");
        if (m->L[p].loaded)
            for (o = 0; o < m->L[p].cout; o++) {
                int64_t sh = -m->hgrid - m->L[p].eacc[o];
                if (sh < -31 || sh > 62)
                    die("%s: HA0's y (SPEC O6): shift -H - Eacc = %lld outside [-31, 62] (channel %ld)",
                        m->L[p].name, (long long)sh, o);
            }
    }
    for (i = 0; i < m->nl; i++) {
        layer_t *L = &m->L[i];
        L->hgrid = m->hgrid;
        L->o6 = m->hgrid > 0 && strcmp(L->out, "y") == 0;
        if (m->hgrid > 0 && strcmp(L->src, "y") == 0) L->in_kind = 3;
    }
}

/* the stored dtype of a layer's output (docs/VECTORS.md 2): codes and pixels
 * uint8, O2/O3/O5 int8, O6's (8 + H)-bit levels int16 */
static const char *out_dtype(const layer_t *L)
{
    int r = out_rule(L);
    if (r == 3 && L->o6) return "i2";
    return (r == 1 || r == 4) ? "u1" : "i1";
}

/* dumps of one layer: layers/<L>/{in, dec_table, acc (want_acc), out} */
static void dump_layer(const model_t *m, const layer_t *L, const arr_t *in, const int64_t *in_mu,
                       const arr_t *acc, const arr_t *out, int want_acc)
{
    char name[PATHLEN];
    int uns = src_unsigned(m, L);
    long sh[2], q, c, off = uns ? 0 : 128;
    arr_t tab;
    xsnprintf(name, sizeof name, "layers/%s/in", L->name);
    if (L->in_kind == 2) {
        /* O5 per-element levels: int16 or int32 (level_dtype), no decode table */
        dump(name, in, level_dtype(m, L));
    } else if (L->in_kind == 3) {
        /* O6: HA0's levels on the 2^-H grid (the tensor y), int16, no decode table */
        dump(name, in, "i2");
    } else {
        dump(name, in, uns ? "u1" : "i1");
        /* I1 as one 256-entry table per input channel, index = code + offset */
        sh[0] = L->cin;
        sh[1] = 256;
        tab = arr_new(2, sh);
        for (c = 0; c < L->cin; c++)
            for (q = 0; q < 256; q++) {
                /* pixels are 0..255 only: the table holds their levels (offset 0) */
                tab.v[c * 256 + q] = input_level(m, L, (int)c, q - off, in_mu);
            }
        xsnprintf(name, sizeof name, "layers/%s/dec_table", L->name);
        dump(name, &tab, "i8");
        free(tab.v);
    }
    if (want_acc) {
        xsnprintf(name, sizeof name, "layers/%s/acc", L->name);
        dump(name, acc, "i4");
    }
    xsnprintf(name, sizeof name, "layers/%s/out", L->name);
    dump(name, out, out_dtype(L));
}

/* ------------------------------------------------------------------ */
/* SPEC E1: means, scales, rounded mean, sign and table index          */
/* ------------------------------------------------------------------ */

typedef struct { arr_t means, scales, ybase, ysign, yidx; int offset; } e1_t;

/* from the h_s output `out` (layer L = HS5: channels [0, M) scales, [M, 2M)
 * means) and the model's gauss.thresholds / gauss.frac_bits.  offset (SPEC
 * O5): the means on the 2^-G grid are the offsets of the y symbols, which
 * are coded with the zero-mean family (E1 with mean_q = 0: base 0, sign +1,
 * index = scale index) */
static void entropy_e1(const char *mdir, const layer_t *L, const arr_t *out, int M, int offset, e1_t *r)
{
    char path[PATHLEN];
    arr_t thr, fb;
    long hw = out->shape[1] * out->shape[2], c, j, e, t, nscales;
    int S, F;
    if (out->shape[0] != 2 * M) die("%s: %ld channels, expected 2M = %d", L->name, out->shape[0], 2 * M);
    xsnprintf(path, sizeof path, "%s/entropy/gauss.thresholds.npy", mdir);
    thr = read_npy(path);
    xsnprintf(path, sizeof path, "%s/entropy/gauss.frac_bits.npy", mdir);
    fb = read_npy(path);
    if (fb.n != 2 || fb.v[0] < 0 || fb.v[0] > 40 || fb.v[1] < 0 || fb.v[1] > 40)
        die("gauss.frac_bits must hold 2 values in [0, 40]");
    S = (int)fb.v[0];
    F = (int)fb.v[1];
    nscales = thr.n + 1;
    r->means = arr3(M, out->shape[1], out->shape[2]);
    r->scales = arr3(M, out->shape[1], out->shape[2]);
    r->ybase = arr3(M, out->shape[1], out->shape[2]);
    r->ysign = arr3(M, out->shape[1], out->shape[2]);
    r->yidx = arr3(M, out->shape[1], out->shape[2]);
    r->offset = offset;
    for (c = 0; c < M; c++)
        for (j = 0; j < hw; j++) {
            int64_t cnt = 0, d;
            e = c * hw + j;
            r->scales.v[e] = rq(out->v[c * hw + j], -(int)(L->out_exp.v[c] + S));
            if (offset) {    /* O5: mean_q = RQ(q_mean, -(e_mean + G)); coded around 0 */
                r->means.v[e] = o5_mean(out->v[(M + c) * hw + j], L->out_exp.v[M + c], L->grid);
                r->ybase.v[e] = 0;
                d = 0;
            } else {
                r->means.v[e] = rq(out->v[(M + c) * hw + j], -(int)(L->out_exp.v[M + c] + F));
                r->ybase.v[e] = rhu(r->means.v[e], F);
                d = r->means.v[e] - r->ybase.v[e] * ((int64_t)1 << F);
            }
            r->ysign.v[e] = d < 0 ? -1 : 1;
            for (t = 0; t < thr.n; t++) cnt += r->scales.v[e] > thr.v[t];
            r->yidx.v[e] = (d < 0 ? -d : d) * nscales + cnt;
        }
    free(thr.v);
    free(fb.v);
}

static void dump_e1(const e1_t *r)
{
    dump("entropy/means", &r->means, "i4");
    dump("entropy/scale_q", &r->scales, "i4");
    if (!r->offset) dump("entropy/y_base", &r->ybase, "i4"); /* O5: no base */
    dump("entropy/y_idx", &r->yidx, "i4");
}

/* ------------------------------------------------------------------ */
/* entropy tables (docs/ENTROPY.md 2, 8) and the .fxl CRC (BITSTREAM)  */
/* ------------------------------------------------------------------ */

/* a table set: row r is data[start[r] .. start[r] + sizes[r] - 1] */
typedef struct { arr_t data, sizes, offsets; int64_t *start; } tables_t;

static uint32_t crc32(const unsigned char *b, long n)
{
    uint32_t c = 0xFFFFFFFFu;
    long i;
    int k;
    for (i = 0; i < n; i++) {
        c ^= b[i];
        for (k = 0; k < 8; k++) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
    }
    return c ^ 0xFFFFFFFFu;
}

/* docs/ENTROPY.md 8: <prefix>.cdf_data (rows concatenated) or <prefix>.cdfs
 * (rows zero-padded to a matrix), with <prefix>.cdf_sizes and .offsets */
static void read_tables(tables_t *t, const char *mdir, const char *prefix)
{
    char path[PATHLEN];
    FILE *f;
    long r, pos = 0;
    xsnprintf(path, sizeof path, "%s/entropy/%s.cdf_sizes.npy", mdir, prefix);
    t->sizes = read_npy(path);
    xsnprintf(path, sizeof path, "%s/entropy/%s.offsets.npy", mdir, prefix);
    t->offsets = read_npy(path);
    if (t->offsets.n != t->sizes.n) die("%s: inconsistent %s tables", mdir, prefix);
    t->start = (int64_t *)xmalloc(sizeof(int64_t) * (size_t)t->sizes.n);
    xsnprintf(path, sizeof path, "%s/entropy/%s.cdf_data.npy", mdir, prefix);
    f = fopen(path, "rb");
    if (f) {
        fclose(f);
        t->data = read_npy(path);
        for (r = 0; r < t->sizes.n; r++) {
            t->start[r] = pos;
            pos += (long)t->sizes.v[r];
        }
        if (pos != t->data.n) die("%s: cdf_data does not match cdf_sizes", path);
    } else {
        xsnprintf(path, sizeof path, "%s/entropy/%s.cdfs.npy", mdir, prefix);
        t->data = read_npy(path);
        if (t->data.ndim != 2 || t->data.shape[0] != t->sizes.n) die("%s: bad table matrix", path);
        for (r = 0; r < t->sizes.n; r++) {
            t->start[r] = r * t->data.shape[1];
            if (t->sizes.v[r] < 2 || t->sizes.v[r] > t->data.shape[1]) die("%s: bad cdf size", path);
        }
    }
}

static uint32_t le32(const unsigned char *b)
{
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}

static int64_t *channel_index(long C, long hw)
{
    int64_t *idx = (int64_t *)xmalloc(sizeof(int64_t) * (size_t)(C * hw));
    long j;
    for (j = 0; j < C * hw; j++) idx[j] = j / hw; /* table = channel (ENTROPY.md 9) */
    return idx;
}


#endif /* FXLIC_COMMON_H */

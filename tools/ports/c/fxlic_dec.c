/*
 * fxlic_dec.c -- an independent C99 implementation of the fxlic integer
 * DECODER (h_s + g_s, the entropy model's integer means/scales and,
 * optionally, the rANS decoder and the .fxl container), written from
 * docs/SPEC.md, docs/ENTROPY.md and docs/BITSTREAM.md only.
 *
 * It reads a conformance case written by `fxlic vectors` (docs/VECTORS.md):
 * case.txt, the model directory it names (arch.txt and the per-layer stored
 * fields w_codes, w_lut, w_exp, bias, in_exp, out_exp, mux as .npy), the
 * case's z.npy, y.npy and mu.npy (or, with --stream, only stream.fxl), and
 * writes per-layer dumps in the same relative layout for `fxlic verify`.
 *
 *   fxlic_dec [-f npy|mem] [-w npy|bin] [-l chw|hwc] [--stream] [--no-acc] CASE_DIR DUMP_DIR
 *
 * -w bin reads the seven stored fields from the raw little-endian .bin files
 * (`fxlic vectors --bin`, docs/VECTORS.md 1) instead of the .npy: no header,
 * the dtype of each field is the one docs/VECTORS.md 3 lists and the element
 * count follows from arch.txt; -l hwc: the .bin was written with --layout hwc
 * (w_codes in O, KY, KX, C order).
 *
 * Only the stored fields are read; every derived quantity (alignment
 * shifts, accumulator exponents, requantization shifts, decode tables,
 * codebooks) is computed here from the rules it cites.
 */
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

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fxlic_dec: ");
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
} layer_t;

typedef struct {
    char name[64], kind[16];
    int N, M, pad;
    int nl;
    layer_t L[MAXL];
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
    while (fgets(line, sizeof line, f)) {
        if (line[0] == '#' || line[0] == '\n') continue;
        if (strncmp(line, "arch ", 5) == 0) {
            if (sscanf(line + 5, "%63s %15s %d %d %d", m->name, m->kind, &m->N, &m->M, &m->pad) != 5)
                die("%s: bad arch line", path);
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
 * (only for a layer reading y_hat). */
static int64_t input_level(const model_t *m, const layer_t *L, int c, int64_t q, const int64_t *mu)
{
    int64_t level;
    if (strcmp(L->src, "z_hat") == 0) level = q;
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

static void run_layer(const model_t *m, const layer_t *L, const arr_t *in, const int64_t *mu,
                      arr_t *acc_out, arr_t *codes_out)
{
    long C = in->shape[0], H = in->shape[1], W = in->shape[2], Ho, Wo;
    int p = L->k / 2, k = L->k, S = L->stride, rule = out_rule(L);
    long o, c, ky, kx, y, x, i;
    arr_t V, acc, out;
    if (C != L->cin) die("%s: input has %ld channels, expected %d", L->name, C, L->cin);
    V = arr3(C, H, W);
    for (c = 0; c < C; c++)
        for (i = 0; i < H * W; i++) V.v[c * H * W + i] = input_level(m, L, (int)c, in->v[c * H * W + i], mu);
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
            case 3: v = sat(rq(a, s) - (mu ? mu[o] : 0), -128, 127); break; /* O3 (not in the decoder) */
            default: v = sat(rq(a, s), 0, 255); break;                        /* O4 */
            }
            out.v[o * Ho * Wo + i] = v;
        }
    }
    free(V.v);
    *acc_out = acc;
    *codes_out = out;
}

/* ------------------------------------------------------------------ */
/* rANS decoder (docs/ENTROPY.md 6) and the .fxl container (BITSTREAM) */
/* ------------------------------------------------------------------ */

/* a table set: row r is data[start[r] .. start[r] + sizes[r] - 1] */
typedef struct { arr_t data, sizes, offsets; int64_t *start; } tables_t;

typedef struct {
    const unsigned char *w;
    long nwords, p;
    uint64_t x;
} rans_t;

static uint32_t word(const rans_t *r, long i)
{
    const unsigned char *b = r->w + 4 * i;
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}

static void renorm(rans_t *r)
{
    if (r->x < ((uint64_t)1 << 31)) {
        if (r->p == r->nwords) die("corrupt rANS stream: truncated");
        r->x = (r->x << 32) | word(r, r->p);
        r->p++;
    }
}

static int get4(rans_t *r)
{
    int b = (int)(r->x & 15);
    r->x >>= 4;
    renorm(r);
    return b;
}

/* decode n symbols with table index idx[i]; returns symbols */
static void rans_decode(const unsigned char *data, long len, const tables_t *t, const int64_t *idx, long n,
                        int64_t *sym)
{
    rans_t r;
    long i;
    if (len % 4 != 0 || len < 8) die("corrupt rANS stream: length %ld", len);
    r.w = data;
    r.nwords = len / 4;
    r.x = (uint64_t)word(&r, 0) | ((uint64_t)word(&r, 1) << 32);
    r.p = 2;
    if (r.x < ((uint64_t)1 << 31) || r.x >= ((uint64_t)1 << 63)) die("corrupt rANS stream: initial state");
    for (i = 0; i < n; i++) {
        long tb = (long)idx[i];
        const int64_t *cdf;
        long mv = (long)t->sizes.v[tb] - 2, s, lo, hi;
        uint64_t cum = r.x & 0xFFFF, start, freq;
        int64_t value;
        if (tb < 0 || tb >= t->sizes.n) die("table index %ld out of range", tb);
        cdf = t->data.v + t->start[tb];
        /* the largest s with cdf[s] <= cum, 0 <= s <= mv */
        lo = 0;
        hi = mv;
        while (lo < hi) {
            long mid = (lo + hi + 1) / 2;
            if ((uint64_t)cdf[mid] <= cum) lo = mid; else hi = mid - 1;
        }
        s = lo;
        start = (uint64_t)cdf[s];
        freq = (uint64_t)cdf[s + 1] - start;
        r.x = freq * (r.x >> 16) + cum - start;
        renorm(&r);
        value = s;
        if (s == mv) {
            int cnt = get4(&r), j;
            uint32_t raw = 0;
            if (cnt > 8) die("corrupt rANS stream: escape count %d", cnt);
            for (j = 0; j < cnt; j++) raw |= (uint32_t)get4(&r) << (4 * j);
            if (raw & 1) value = -(int64_t)(raw >> 1) - 1;
            else value = (int64_t)(raw >> 1) + mv;
        }
        sym[i] = value + t->offsets.v[tb];
    }
    if (r.x != ((uint64_t)1 << 31) || r.p != r.nwords) die("corrupt rANS stream: final state");
}

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

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static const char *case_value(const char *casedir, const char *key, char *buf, size_t n)
{
    char path[PATHLEN], line[1024];
    FILE *f;
    size_t kl = strlen(key);
    xsnprintf(path, sizeof path, "%s/case.txt", casedir);
    f = fopen(path, "r");
    if (!f) die("%s: %s", path, strerror(errno));
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ' ') {
            char *v = line + kl + 1;
            v[strcspn(v, "\r\n")] = 0;
            if (strlen(v) >= n) die("%s: value of %s too long", path, key);
            strcpy(buf, v);
            fclose(f);
            return buf;
        }
    }
    fclose(f);
    die("%s: no %s", path, key);
    return NULL;
}

static void usage(void)
{
    fprintf(stderr, "usage: fxlic_dec [-f npy|mem] [-w npy|bin] [-l chw|hwc] [--stream] [--no-acc] "
            "CASE_DIR DUMP_DIR\n");
    exit(2);
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

int main(int argc, char **argv)
{
    const char *casedir = NULL, *dumpdir = NULL;
    char buf[PATHLEN], mdir[PATHLEN], path[PATHLEN], name[PATHLEN];
    int from_stream = 0, want_acc = 1, have_y = 0, i, li;
    long H, W, Hp, Wp, c, j;
    static model_t m;
    static arr_t tensors[MAXL];
    int have[MAXL];
    arr_t y, z, mu;
    int hyper;
    unsigned char *stream = NULL;
    const unsigned char *ys = NULL;
    long ylen = 0;

    memset(&y, 0, sizeof y);
    memset(&z, 0, sizeof z);
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-f") == 0 && i + 1 < argc) {
            i++;
            if (strcmp(argv[i], "mem") == 0) g_mem = 1;
            else if (strcmp(argv[i], "npy") == 0) g_mem = 0;
            else usage();
        } else if (strcmp(argv[i], "-w") == 0 && i + 1 < argc) {
            i++;
            if (strcmp(argv[i], "bin") == 0) g_wbin = 1;
            else if (strcmp(argv[i], "npy") == 0) g_wbin = 0;
            else usage();
        } else if (strcmp(argv[i], "-l") == 0 && i + 1 < argc) {
            i++;
            if (strcmp(argv[i], "hwc") == 0) g_hwc = 1;
            else if (strcmp(argv[i], "chw") == 0) g_hwc = 0;
            else usage();
        } else if (strcmp(argv[i], "--stream") == 0) from_stream = 1;
        else if (strcmp(argv[i], "--no-acc") == 0) want_acc = 0;
        else if (argv[i][0] == '-') usage();
        else if (!casedir) casedir = argv[i];
        else if (!dumpdir) dumpdir = argv[i];
        else usage();
    }
    if (!casedir || !dumpdir) usage();
    if (strlen(dumpdir) >= sizeof g_dump) die("path too long");
    strcpy(g_dump, dumpdir);
    mkdirs(g_dump);
    init_codebooks();

    case_value(casedir, "model_dir", buf, sizeof buf);
    if (strcmp(buf, "-") == 0) die("%s: the case has no model directory", casedir);
    if (buf[0] == '/') xsnprintf(mdir, sizeof mdir, "%s", buf);   /* absolute */
    else xsnprintf(mdir, sizeof mdir, "%s/%s", casedir, buf);     /* relative to the case */
    H = atol(case_value(casedir, "height", buf, sizeof buf));
    W = atol(case_value(casedir, "width", buf, sizeof buf));
    read_arch(&m, mdir);
    hyper = strcmp(m.kind, "hyperprior") == 0;
    Hp = (H + m.pad - 1) / m.pad * m.pad; /* P1: padded to the pad multiple */
    Wp = (W + m.pad - 1) / m.pad * m.pad;
    for (li = 0; li < m.nl; li++) {
        have[li] = 0;
        if (strncmp(m.L[li].name, "HS", 2) == 0 || strncmp(m.L[li].name, "ST", 2) == 0)
            load_layer(&m.L[li], mdir);
    }

    if (from_stream) {
        /* docs/BITSTREAM.md: header, mu records, substreams, CRC */
        long len, K, Lz, Ly, off;
        tables_t fact;
        xsnprintf(path, sizeof path, "%s/stream.fxl", casedir);
        stream = read_file(path, &len);
        if (len < 46 || memcmp(stream, "FXLC", 4) != 0 || stream[4] != 1) die("%s: not an .fxl v1 stream", path);
        if (crc32(stream, len - 4) != le32(stream + len - 4)) die("%s: CRC mismatch", path);
        if (stream[5] != (hyper ? 0 : 1)) die("%s: architecture kind differs from the model", path);
        if ((stream[22] | (stream[23] << 8)) != H || (stream[24] | (stream[25] << 8)) != W)
            die("%s: image size differs from case.txt", path);
        if (stream[26] != 3 || stream[27] != m.pad) die("%s: channels / pad multiple", path);
        K = stream[28] | (stream[29] << 8);
        if (30 + 3 * K + 8 + 4 > len) die("%s: truncated header", path);
        {
            long shp = m.M;
            mu = arr_new(1, &shp);
        }
        for (j = 0; j < K; j++) {
            long ch = stream[30 + 3 * j] | (stream[31 + 3 * j] << 8);
            int v = stream[32 + 3 * j];
            if (ch >= m.M) die("%s: mean-reduced channel %ld out of range", path, ch);
            mu.v[ch] = v >= 128 ? v - 256 : v;
        }
        off = 30 + 3 * K;
        Lz = (long)le32(stream + off);
        Ly = (long)le32(stream + off + 4);
        off += 8;
        if (Lz < 0 || Ly < 0 || off + Lz + Ly + 4 != len) die("%s: substream lengths do not add up", path);
        read_tables(&fact, mdir, "fact");
        ys = stream + off + Lz;
        ylen = Ly;
        if (hyper) {
            int64_t *idx;
            z = arr3(m.N, Hp / 64, Wp / 64);
            idx = channel_index(z.shape[0], z.shape[1] * z.shape[2]);
            rans_decode(stream + off, Lz, &fact, idx, z.n, z.v);
            free(idx);
            for (j = 0; j < z.n; j++)
                if (z.v[j] < -128 || z.v[j] > 127) die("corrupt stream: z outside int8");
            dump("z", &z, "i1");
            dump("entropy/z_sym", &z, "i4");
        } else {
            int64_t *idx;
            y = arr3(m.M, Hp / 16, Wp / 16);
            idx = channel_index(y.shape[0], y.shape[1] * y.shape[2]);
            rans_decode(ys, ylen, &fact, idx, y.n, y.v);
            free(idx);
            for (j = 0; j < y.n; j++) {
                y.v[j] -= mu.v[j / (y.shape[1] * y.shape[2])];
                if (y.v[j] < -128 || y.v[j] > 127) die("corrupt stream: y outside its 8-bit range");
            }
            have_y = 1;
            dump("y", &y, "i1");
        }
        dump("mu", &mu, "i1");
    } else {
        xsnprintf(path, sizeof path, "%s/mu.npy", casedir);
        mu = read_npy(path);
        xsnprintf(path, sizeof path, "%s/y.npy", casedir);
        y = read_npy(path);
        have_y = 1;
        if (hyper) {
            xsnprintf(path, sizeof path, "%s/z.npy", casedir);
            z = read_npy(path);
        }
    }
    if (mu.n != m.M) die("mu has %ld channels, expected %d", mu.n, m.M);
    if (hyper) {
        int64_t *idx = channel_index(z.shape[0], z.shape[1] * z.shape[2]);
        arr_t zi = z;
        zi.v = idx;
        dump("entropy/z_idx", &zi, "i4");
        free(idx);
        if (!from_stream) {
            dump("z", &z, "i1");
            dump("entropy/z_sym", &z, "i4");
        }
    }
    if (!from_stream) dump("y", &y, "i1");
    if (!hyper) {
        /* factorized prior: y_hat = stored y + mu is coded directly, table = channel */
        long hw = y.shape[1] * y.shape[2];
        arr_t yh = arr3(y.shape[0], y.shape[1], y.shape[2]), yi = yh;
        yi.v = channel_index(y.shape[0], hw);
        for (j = 0; j < y.n; j++) yh.v[j] = y.v[j] + mu.v[j / hw];
        dump("entropy/y_hat", &yh, "i4");
        dump("entropy/y_sym", &yh, "i4");
        dump("entropy/y_idx", &yi, "i4");
        free(yh.v);
        free(yi.v);
    }

    /* h_s and g_s in layer-list order */
    for (li = 0; li < m.nl; li++) {
        layer_t *L = &m.L[li];
        arr_t acc, out;
        const arr_t *in;
        int src_unsigned = 0;
        if (!L->loaded) continue;
        if (strcmp(L->src, "z_hat") == 0) {
            if (!hyper) die("%s reads z_hat in a factorized model", L->name);
            in = &z;
        } else if (is_y(L->src)) {
            if (!have_y) die("%s reads y_hat before it is decoded", L->name);
            in = &y;
        } else {
            int p = find_layer(&m, L->src);
            if (p < 0 || !have[p]) die("%s: source %s not computed", L->name, L->src);
            in = &tensors[p];
            src_unsigned = out_rule(&m.L[p]) == 1;
        }
        run_layer(&m, L, in, is_y(L->src) ? mu.v : NULL, &acc, &out);
        xsnprintf(name, sizeof name, "layers/%s/in", L->name);
        dump(name, in, src_unsigned ? "u1" : "i1");
        {   /* I1 as one 256-entry table per input channel, index = code + offset */
            long sh[2], q, off = src_unsigned ? 0 : 128;
            arr_t tab;
            sh[0] = L->cin;
            sh[1] = 256;
            tab = arr_new(2, sh);
            for (c = 0; c < L->cin; c++)
                for (q = 0; q < 256; q++)
                    tab.v[c * 256 + q] = input_level(&m, L, (int)c, q - off,
                                                     is_y(L->src) ? mu.v : NULL);
            xsnprintf(name, sizeof name, "layers/%s/dec_table", L->name);
            dump(name, &tab, "i8");
            free(tab.v);
        }
        if (want_acc) {
            xsnprintf(name, sizeof name, "layers/%s/acc", L->name);
            dump(name, &acc, "i4");
        }
        xsnprintf(name, sizeof name, "layers/%s/out", L->name);
        dump(name, &out, (out_rule(L) == 1 || out_rule(L) == 4) ? "u1" : "i1");
        free(acc.v);
        tensors[li] = out;
        have[li] = 1;

        if (strcmp(L->out, "ms") == 0) {
            /* SPEC E1: mean_q (F fractional bits), scale_q (S fractional bits), the rounded
             * mean base, its sign and family and the table index, from the h_s output;
             * channels [0, M) scales, [M, 2M) means */
            arr_t thr, fb, means, scales, ybase, yidx, ysym, yhat, ysign;
            long hw = out.shape[1] * out.shape[2], e, t, nscales;
            int S, F;
            xsnprintf(path, sizeof path, "%s/entropy/gauss.thresholds.npy", mdir);
            thr = read_npy(path);
            xsnprintf(path, sizeof path, "%s/entropy/gauss.frac_bits.npy", mdir);
            fb = read_npy(path);
            if (fb.n != 2 || fb.v[0] < 0 || fb.v[0] > 40 || fb.v[1] < 0 || fb.v[1] > 40)
                die("gauss.frac_bits must hold 2 values in [0, 40]");
            S = (int)fb.v[0];
            F = (int)fb.v[1];
            nscales = thr.n + 1;
            means = arr3(m.M, out.shape[1], out.shape[2]);
            scales = arr3(m.M, out.shape[1], out.shape[2]);
            ybase = arr3(m.M, out.shape[1], out.shape[2]);
            ysign = arr3(m.M, out.shape[1], out.shape[2]);
            yidx = arr3(m.M, out.shape[1], out.shape[2]);
            ysym = arr3(m.M, out.shape[1], out.shape[2]);
            yhat = arr3(m.M, out.shape[1], out.shape[2]);
            for (c = 0; c < m.M; c++)
                for (j = 0; j < hw; j++) {
                    int64_t cnt = 0, d;
                    e = c * hw + j;
                    scales.v[e] = rq(out.v[c * hw + j], -(int)(L->out_exp.v[c] + S));
                    means.v[e] = rq(out.v[(m.M + c) * hw + j], -(int)(L->out_exp.v[m.M + c] + F));
                    ybase.v[e] = rhu(means.v[e], F);
                    d = means.v[e] - ybase.v[e] * ((int64_t)1 << F);
                    ysign.v[e] = d < 0 ? -1 : 1;
                    for (t = 0; t < thr.n; t++) cnt += scales.v[e] > thr.v[t];
                    yidx.v[e] = (d < 0 ? -d : d) * nscales + cnt;
                }
            if (from_stream) {
                tables_t gauss;
                read_tables(&gauss, mdir, "gauss");
                rans_decode(ys, ylen, &gauss, yidx.v, yidx.n, ysym.v);
                y = arr3(m.M, out.shape[1], out.shape[2]);
                for (e = 0; e < y.n; e++) {
                    yhat.v[e] = ybase.v[e] + ysign.v[e] * ysym.v[e];
                    y.v[e] = yhat.v[e] - mu.v[e / hw];
                    if (y.v[e] < -128 || y.v[e] > 127) die("corrupt stream: y outside its 8-bit range");
                }
                have_y = 1;
                dump("y", &y, "i1");
            } else {
                if (y.n != yhat.n) die("y and the h_s output have different sizes");
                for (e = 0; e < y.n; e++) {
                    yhat.v[e] = y.v[e] + mu.v[e / hw];
                    ysym.v[e] = ysign.v[e] * (yhat.v[e] - ybase.v[e]);
                }
            }
            dump("entropy/means", &means, "i4");
            dump("entropy/scale_q", &scales, "i4");
            dump("entropy/y_base", &ybase, "i4");
            dump("entropy/y_idx", &yidx, "i4");
            dump("entropy/y_sym", &ysym, "i4");
            dump("entropy/y_hat", &yhat, "i4");
        }
        if (strcmp(L->out, "pixel") == 0) {
            /* P1: crop the reconstruction to H x W */
            arr_t rec = arr3(3, H, W);
            long yy, xx;
            if (out.shape[1] != Hp || out.shape[2] != Wp) die("reconstruction is not Hp x Wp");
            for (c = 0; c < 3; c++)
                for (yy = 0; yy < H; yy++)
                    for (xx = 0; xx < W; xx++)
                        rec.v[(c * H + yy) * W + xx] = out.v[(c * Hp + yy) * Wp + xx];
            dump("recon", &rec, "u1");
        }
    }
    free(stream);
    printf("fxlic_dec: %s, %ldx%ld %s: decoder dumps in %s\n", m.name, W, H,
           from_stream ? "decoded from stream.fxl" : "from z.npy, y.npy, mu.npy", g_dump);
    return 0;
}

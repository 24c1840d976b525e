/*
 * fxlic_enc.c -- a C99 implementation of the fxlic integer ENCODER, written
 * from docs/SPEC.md, docs/ENTROPY.md and docs/BITSTREAM.md: padding (P1),
 * g_a (AT layers), mu from the image (M2), latent rounding and mean
 * reduction (O3, M1), HA0's y on the 2^-H grid (O6), h_a (HA), h_s (HS),
 * SPEC E1 (means, scales, table indexes, y symbols), the rANS encoder
 * (docs/ENTROPY.md 4-5, CompressAI byte layout, escapes) and the .fxl
 * writer (header, records, CRC-32).
 *
 *   fxlic_enc [-f npy|mem] [-w npy|bin] [-l chw|hwc] [--no-acc] [--model-id HEX]
 *             MODEL_DIR IMAGE DUMP_DIR
 *
 * MODEL_DIR: a model directory (docs/VECTORS.md 3: arch.txt, the seven
 * stored per-layer fields, mean_reduction/, entropy/, manifest.json for the
 * model id).  IMAGE: a (3, H, W) uint8 .npy (a case's image.npy) or a binary
 * PPM (P6, maxval 255).  DUMP_DIR receives stream.fxl, entropy/z.rans,
 * entropy/y.rans and every encoder-side tensor in the layout `fxlic verify
 * --scope encoder` reads (image, x, mu, y, z, layers/<L>/{in,dec_table,acc,out}
 * of AT*, HA*, HS*, the entropy side).  --model-id: the 32 hex digits of the
 * model id (the first 16 bytes of the content hash) when MODEL_DIR has no
 * manifest.json.
 *
 * Offset latents (SPEC O5; arch.txt "latents offset", latents/offset_q): z
 * (and a factorized y) leave their layer as O5 symbols around offset_q; the y
 * of a hyperprior leaves AT3 as HA0's input -- O3 codes, or with H > 0 (SPEC
 * O6, spec 1.4: HA0's in_exp is -H) the levels SAT_{8+H}(RQ(acc, -H - E)) on
 * the 2^-H grid, which HA0 reads directly (no decode table) and which are
 * dumped as the int16 tensor y -- and AT3's accumulators are kept (dumped as
 * y_acc) until HS5's means give the symbols
 * SAT8(RHU(acc * 2^(F + E) - mean_q * 2^(F - G), F)), coded with the zero-mean
 * family.
 *
 * The layer arithmetic, the model reading and E1 are shared with the decoder
 * (fxlic_common.h).  No floating point anywhere.
 */
#include "fxlic_common.h"

/* ------------------------------------------------------------------ */
/* SPEC M2 with exact integers                                         */
/* ------------------------------------------------------------------ */

/* a_q * S + b_q * D needs up to 63 + 36 bits: GCC/Clang's 128-bit integer
 * (__extension__ keeps -pedantic quiet); every product and sum below is
 * exact in it */
__extension__ typedef __int128 i128;

static i128 floor_div128(i128 n, i128 d) /* d > 0 */
{
    i128 q = n / d;
    if (n % d != 0 && n < 0) q -= 1;
    return q;
}

/* mu = SAT8(floor((a_q S + b_q D) / (D 2^16) + 1/2)) = SAT8(floor((2 num + den) / (2 den))) */
static int64_t m2_mu(int64_t a_q, int64_t b_q, int64_t S, int64_t n)
{
    i128 D = (i128)255 * n, num = (i128)a_q * S + (i128)b_q * D, den = D * 65536, q;
    q = floor_div128(2 * num + den, 2 * den);
    if (q < -128) return -128;
    if (q > 127) return 127;
    return (int64_t)q;
}

/* the loader check of SPEC O5: 2^31 * 2^(F + E) + max|off| * 2^(F - G) < 2^62 for
 * every output channel of a latent layer (so the symbol's difference is exact) */
static void o5_check(const model_t *m, const layer_t *L)
{
    int64_t lo, hi, omax;
    long o;
    o5_offset_range(m, L, &lo, &hi);
    omax = lo < 0 ? -lo : lo;
    if (hi > omax) omax = hi;
    for (o = 0; o < L->cout; o++) {
        int F = o5_frac_bits(L->eacc[o], m->grid), G = m->grid;
        /* each term below 2^61 first, so that the sum itself cannot overflow */
        if (F + L->eacc[o] > 30 || F - G > 61 || omax >= ((int64_t)1 << (61 - (F - G))) ||
            ((int64_t)1 << (31 + F + L->eacc[o])) + omax * ((int64_t)1 << (F - G)) >= ((int64_t)1 << 62))
            die("%s: offset-latent symbol (SPEC O5) could leave int64", L->name);
    }
}

/* ------------------------------------------------------------------ */
/* rANS encoder (docs/ENTROPY.md 4-5)                                  */
/* ------------------------------------------------------------------ */

#define RANS_L ((uint64_t)1 << 31)

typedef struct { uint32_t *w; long n, cap; } words_t;

static void emit_word(words_t *b, uint32_t v)
{
    if (b->n == b->cap) {
        uint32_t *nw;
        b->cap = b->cap ? 2 * b->cap : 1024;
        nw = (uint32_t *)xmalloc(sizeof(uint32_t) * (size_t)b->cap);
        if (b->n) memcpy(nw, b->w, sizeof(uint32_t) * (size_t)b->n);
        free(b->w);
        b->w = nw;
    }
    b->w[b->n++] = v;
}

/* Rans64EncPut(start, freq, 16) */
static void put_table(uint64_t *x, words_t *b, uint64_t start, uint64_t freq)
{
    if (*x >= (((RANS_L >> 16) << 32) * freq)) {
        emit_word(b, (uint32_t)(*x & 0xFFFFFFFFu));
        *x >>= 32;
    }
    *x = ((*x / freq) << 16) + (*x % freq) + start;
}

/* Rans64EncPutBits(v, 4) */
static void put_bits4(uint64_t *x, words_t *b, uint32_t v)
{
    if (*x >= (((RANS_L >> 16) << 32) << 12)) {
        emit_word(b, (uint32_t)(*x & 0xFFFFFFFFu));
        *x >>= 32;
    }
    *x = (*x << 4) | v;
}

/* encode n symbols, symbol i with table idx[i]; returns the stream (4-byte
 * little-endian words: final state low, high, then the renormalisation words
 * last emitted first) and its length */
static unsigned char *rans_encode(const tables_t *t, const int64_t *idx, const int64_t *sym, long n,
                                  long *len)
{
    uint64_t x = RANS_L;
    words_t b;
    long i, k;
    unsigned char *out;
    memset(&b, 0, sizeof b);
    /* the puts of all symbols, encoded in reverse order */
    for (i = n - 1; i >= 0; i--) {
        long tb = (long)idx[i], mv;
        const int64_t *cdf;
        int64_t value;
        uint32_t raw = 0;
        int esc = 0, nch = 0, j;
        if (tb < 0 || tb >= t->sizes.n) die("table index %ld out of range", tb);
        cdf = t->data.v + t->start[tb];
        mv = (long)t->sizes.v[tb] - 2;
        value = sym[i] - t->offsets.v[tb];
        if (value < -2147483647LL - 1 || value > 2147483647LL) die("symbol %lld: value outside int32", (long long)sym[i]);
        if (value < 0) { raw = (uint32_t)(-2 * value - 1); value = mv; esc = 1; }
        else if (value >= mv) { raw = (uint32_t)(2 * (value - mv)); value = mv; esc = 1; }
        if (esc) {
            while (nch < 8 && (raw >> (4 * nch)) != 0) nch++;   /* chunks, 0..8 */
            for (j = nch - 1; j >= 0; j--) put_bits4(&x, &b, (raw >> (4 * j)) & 15);
            put_bits4(&x, &b, (uint32_t)nch);                  /* count (< 15: one put) */
        }
        if (cdf[value + 1] <= cdf[value]) die("table %ld: zero frequency", tb);
        put_table(&x, &b, (uint64_t)cdf[value], (uint64_t)(cdf[value + 1] - cdf[value]));
    }
    *len = 4 * (2 + b.n);
    out = (unsigned char *)xmalloc((size_t)*len);
    for (k = 0; k < 2 + b.n; k++) {
        uint32_t v = k == 0 ? (uint32_t)(x & 0xFFFFFFFFu) : k == 1 ? (uint32_t)(x >> 32) : b.w[b.n - 1 - (k - 2)];
        out[4 * k] = (unsigned char)(v & 255);
        out[4 * k + 1] = (unsigned char)((v >> 8) & 255);
        out[4 * k + 2] = (unsigned char)((v >> 16) & 255);
        out[4 * k + 3] = (unsigned char)(v >> 24);
    }
    free(b.w);
    return out;
}

/* ------------------------------------------------------------------ */
/* files                                                               */
/* ------------------------------------------------------------------ */

static void write_bytes(const char *rel, const unsigned char *b, long n)
{
    char path[PATHLEN], dir[PATHLEN], *slash;
    FILE *f;
    xsnprintf(path, sizeof path, "%s/%s", g_dump, rel);
    strcpy(dir, path);
    slash = strrchr(dir, '/');
    if (slash) { *slash = 0; mkdirs(dir); }
    f = fopen(path, "wb");
    if (!f) die("%s: %s", path, strerror(errno));
    if (n && fwrite(b, 1, (size_t)n, f) != (size_t)n) die("%s: write error", path);
    if (fclose(f) != 0) die("%s: write error", path);
}

/* the image: a (3, H, W) uint8 .npy, or a binary PPM (P6, maxval 255) */
static arr_t read_image(const char *path)
{
    size_t n = strlen(path);
    arr_t a;
    long i;
    if (n >= 4 && strcmp(path + n - 4, ".npy") == 0) {
        a = read_npy(path);
        if (a.ndim != 3 || a.shape[0] != 3) die("%s: the image must be a (3, H, W) array", path);
    } else {
        long len, p = 2, v[3], W, H, k, c;
        unsigned char *b = read_file(path, &len);
        if (len < 2 || b[0] != 'P' || b[1] != '6') die("%s: neither .npy nor a binary PPM (P6)", path);
        for (k = 0; k < 3; k++) {
            while (p < len && (b[p] == ' ' || b[p] == '\t' || b[p] == '\r' || b[p] == '\n' || b[p] == '#')) {
                if (b[p] == '#') while (p < len && b[p] != '\n') p++;
                else p++;
            }
            v[k] = 0;
            if (p >= len || b[p] < '0' || b[p] > '9') die("%s: bad PPM header", path);
            while (p < len && b[p] >= '0' && b[p] <= '9') v[k] = v[k] * 10 + (b[p++] - '0');
        }
        p++; /* one white-space character */
        W = v[0];
        H = v[1];
        if (v[2] != 255) die("%s: PPM maxval %ld (only 255)", path, v[2]);
        if (W < 1 || H < 1 || W > 16384 || H > 16384 || p + 3 * W * H > len) die("%s: bad PPM size", path);
        a = arr3(3, H, W);
        for (i = 0; i < H * W; i++)
            for (c = 0; c < 3; c++) a.v[c * H * W + i] = b[p + 3 * i + c];
        free(b);
    }
    for (i = 0; i < a.n; i++)
        if (a.v[i] < 0 || a.v[i] > 255) die("%s: pixel values must be 0..255", path);
    return a;
}

/* the model id: the first 16 bytes of the content hash (manifest.json model_hash) */
static void model_id(const char *mdir, const char *hex_opt, unsigned char id[16])
{
    char hex[33], h[128];
    int i;
    if (hex_opt) {
        if (strlen(hex_opt) < 32) die("--model-id needs 32 hex digits");
        memcpy(hex, hex_opt, 32);
    } else {
        if (!model_dir_hash(mdir, h, sizeof h) || strncmp(h, "sha256:", 7) != 0 || strlen(h) < 7 + 32)
            die("%s/manifest.json: no model_hash (give the model id with --model-id)", mdir);
        memcpy(hex, h + 7, 32);
    }
    hex[32] = 0;
    for (i = 0; i < 32; i++) {
        char ch = hex[i];
        int v = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10
              : ch >= 'A' && ch <= 'F' ? ch - 'A' + 10 : -1;
        if (v < 0) die("model id: bad hex digit '%c'", ch);
        if (i % 2 == 0) id[i / 2] = (unsigned char)(v << 4);
        else id[i / 2] |= (unsigned char)v;
    }
}

static void put16(unsigned char *b, long v)
{
    b[0] = (unsigned char)(v & 255);
    b[1] = (unsigned char)((v >> 8) & 255);
}

static void put32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v & 255);
    b[1] = (unsigned char)((v >> 8) & 255);
    b[2] = (unsigned char)((v >> 16) & 255);
    b[3] = (unsigned char)(v >> 24);
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

static void usage(void)
{
    fprintf(stderr, "usage: fxlic_enc [-f npy|mem] [-w npy|bin] [-l chw|hwc] [--no-acc] [--model-id HEX] "
            "MODEL_DIR IMAGE DUMP_DIR\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *mdir = NULL, *imgpath = NULL, *dumpdir = NULL, *id_opt = NULL;
    char path[PATHLEN];
    int want_acc = 1, i, li, hyper, K = 0;
    long H, W, Hp, Wp, c, yy, xx, j, hw, zlen = 0, ylen = 0, flen, off;
    static model_t m;
    static arr_t tensors[MAXL];
    int have[MAXL];
    arr_t img, x, mu, y, z, mask, aq, bq, ysym, yhat, yidx, yacc;
    e1_t e1;
    int have_y = 0, have_z = 0, have_e1 = 0, offset_hp, ylayer = -1;
    int64_t S = 0;
    unsigned char *zs = NULL, *ys, *f, id[16];
    tables_t fact;

    memset(&y, 0, sizeof y);
    memset(&z, 0, sizeof z);
    memset(&yacc, 0, sizeof yacc);
    for (i = 1; i < argc; i++) {
        int io = parse_io_option(argc, argv, &i);
        if (io < 0) usage();
        if (io) continue;
        if (strcmp(argv[i], "--model-id") == 0 && i + 1 < argc) id_opt = argv[++i];
        else if (strcmp(argv[i], "--no-acc") == 0) want_acc = 0;
        else if (argv[i][0] == '-') usage();
        else if (!mdir) mdir = argv[i];
        else if (!imgpath) imgpath = argv[i];
        else if (!dumpdir) dumpdir = argv[i];
        else usage();
    }
    if (!mdir || !imgpath || !dumpdir) usage();
    g_prog = "fxlic_enc";
    if (strlen(dumpdir) >= sizeof g_dump) die("path too long");
    strcpy(g_dump, dumpdir);
    mkdirs(g_dump);
    init_codebooks();
    read_arch(&m, mdir);
    hyper = strcmp(m.kind, "hyperprior") == 0;
    model_id(mdir, id_opt, id);
    for (li = 0; li < m.nl; li++) {
        have[li] = 0;
        if (strncmp(m.L[li].name, "AT", 2) == 0 || strncmp(m.L[li].name, "HA", 2) == 0 ||
            strncmp(m.L[li].name, "HS", 2) == 0)
            load_layer(&m.L[li], mdir);
    }
    read_latents(&m, mdir);
    offset_hp = m.offset && hyper;
    for (li = 0; li < m.nl; li++)   /* O5: the int64 bound of every latent layer */
        if (m.L[li].loaded && (m.L[li].o5 || (offset_hp && strcmp(m.L[li].out, "y") == 0)))
            o5_check(&m, &m.L[li]);

    /* P1: pad on the bottom and the right by replicating the last row / column */
    img = read_image(imgpath);
    H = img.shape[1];
    W = img.shape[2];
    if (H > 16384 || W > 16384 || H * W > (1L << 26)) die("image %ldx%ld too large for the format", W, H);
    Hp = (H + m.pad - 1) / m.pad * m.pad;
    Wp = (W + m.pad - 1) / m.pad * m.pad;
    x = arr3(3, Hp, Wp);
    for (c = 0; c < 3; c++)
        for (yy = 0; yy < Hp; yy++)
            for (xx = 0; xx < Wp; xx++) {
                int64_t v = img.v[(c * H + (yy < H ? yy : H - 1)) * W + (xx < W ? xx : W - 1)];
                x.v[(c * Hp + yy) * Wp + xx] = v;
                S += v;
            }
    dump("image", &img, "u1");
    dump("x", &x, "u1");

    /* M2: mu of every mean-reduced channel from the padded image's pixel sum */
    xsnprintf(path, sizeof path, "%s/mean_reduction/mask.npy", mdir);
    mask = read_npy(path);
    xsnprintf(path, sizeof path, "%s/mean_reduction/a_q.npy", mdir);
    aq = read_npy(path);
    xsnprintf(path, sizeof path, "%s/mean_reduction/b_q.npy", mdir);
    bq = read_npy(path);
    if (mask.n != m.M || aq.n != m.M || bq.n != m.M) die("mean_reduction: expected %d channels", m.M);
    {
        long shp = m.M;
        mu = arr_new(1, &shp);
    }
    for (c = 0; c < m.M; c++)
        if (mask.v[c]) {
            mu.v[c] = m2_mu(aq.v[c], bq.v[c], S, x.n);
            K++;
        }
    dump("mu", &mu, "i1");

    /* g_a, h_a, h_s in layer-list order */
    for (li = 0; li < m.nl; li++) {
        layer_t *L = &m.L[li];
        arr_t acc, out;
        const arr_t *in;
        const int64_t *in_mu = NULL;
        if (!L->loaded) continue;
        if (strcmp(L->src, "x") == 0) in = &x;
        else if (strcmp(L->src, "z_hat") == 0) {
            if (!have_z) die("%s reads z_hat before it is computed", L->name);
            in = &z;
        } else if (is_y(L->src)) {
            if (!have_y) die("%s reads y_hat before it is computed", L->name);
            in = &y;
            in_mu = mu.v;
        } else {
            int p = find_layer(&m, L->src);
            if (p < 0 || !have[p]) die("%s: source %s not computed", L->name, L->src);
            in = &tensors[p];
        }
        run_layer(&m, L, in, in_mu, strcmp(L->out, "y") == 0 ? mu.v : NULL, &acc, &out);
        dump_layer(&m, L, in, in_mu, &acc, &out, want_acc);
        if (offset_hp && strcmp(L->out, "y") == 0) {
            yacc = acc;                        /* O5: kept until the means are known */
            ylayer = li;
            dump("y_acc", &yacc, "i4");
        } else free(acc.v);
        tensors[li] = out;
        have[li] = 1;
        if (strcmp(L->out, "y") == 0) {        /* O3 with M1: stored y = SAT8(v - mu) (O5 factorized: symbols;
                                                * O6: HA0's levels on the 2^-H grid, int16) */
            if (out.shape[0] != m.M) die("%s: y has %ld channels, expected M = %d", L->name, out.shape[0], m.M);
            y = out;
            have_y = 1;
            dump("y", &y, out_dtype(L));
        } else if (strcmp(L->out, "z") == 0) {
            z = out;
            have_z = 1;
            dump("z", &z, "i1");
        } else if (strcmp(L->out, "ms") == 0) {
            entropy_e1(mdir, L, &out, m.M, offset_hp, &e1);
            have_e1 = 1;
        }
    }
    if (!have_y) die("the model computes no y");
    if (hyper && (!have_z || !have_e1)) die("hyperprior model without z or h_s means/scales");

    /* the symbols and the substreams */
    read_tables(&fact, mdir, "fact");
    hw = y.shape[1] * y.shape[2];
    yhat = arr3(y.shape[0], y.shape[1], y.shape[2]);
    ysym = arr3(y.shape[0], y.shape[1], y.shape[2]);
    for (j = 0; j < y.n; j++) yhat.v[j] = y.v[j] + mu.v[j / hw];   /* M1: y_hat = stored + mu */
    if (hyper) {
        tables_t gauss;
        int64_t *zidx = channel_index(z.shape[0], z.shape[1] * z.shape[2]);
        arr_t zi = z;
        if (fact.sizes.n < z.shape[0]) die("fact tables: %ld rows for %ld channels", fact.sizes.n, z.shape[0]);
        zs = rans_encode(&fact, zidx, z.v, z.n, &zlen);
        zi.v = zidx;
        dump("entropy/z_sym", &z, "i4");
        dump("entropy/z_idx", &zi, "i4");
        free(zidx);
        write_bytes("entropy/z.rans", zs, zlen);
        if (e1.yidx.n != y.n) die("y and the h_s output have different sizes");
        if (offset_hp) {
            /* O5: z_hat = z * 2^G + offset_q[c]; y symbols from AT3's accumulators around
             * mean_q, coded with the zero-mean family (index = scale index) */
            long zhw = z.shape[1] * z.shape[2];
            arr_t zh = arr3(z.shape[0], z.shape[1], z.shape[2]);
            for (j = 0; j < z.n; j++) zh.v[j] = o5_level(z.v[j], m.offset_q.v[j / zhw], m.grid);
            dump("entropy/z_hat", &zh, "i4");
            free(zh.v);
            for (j = 0; j < y.n; j++) {
                ysym.v[j] = stage_o5(yacc.v[j], m.L[ylayer].eacc[j / hw], e1.means.v[j], m.grid);
                yhat.v[j] = o5_level(ysym.v[j], e1.means.v[j], m.grid);
            }
            free(yacc.v);
        } else {
            /* E1: symbol = sign * (y_hat - base), table |d| * 64 + scale index */
            for (j = 0; j < y.n; j++) ysym.v[j] = e1.ysign.v[j] * (yhat.v[j] - e1.ybase.v[j]);
        }
        read_tables(&gauss, mdir, "gauss");
        ys = rans_encode(&gauss, e1.yidx.v, ysym.v, ysym.n, &ylen);
        yidx = e1.yidx;
        dump_e1(&e1);
    } else {
        /* factorized prior: y_hat coded directly, table = channel */
        yidx = arr3(y.shape[0], y.shape[1], y.shape[2]);
        free(yidx.v);
        yidx.v = channel_index(y.shape[0], hw);
        if (fact.sizes.n < y.shape[0]) die("fact tables: %ld rows for %ld channels", fact.sizes.n, y.shape[0]);
        for (j = 0; j < y.n; j++) ysym.v[j] = yhat.v[j];
        ys = rans_encode(&fact, yidx.v, ysym.v, ysym.n, &ylen);
        dump("entropy/y_idx", &yidx, "i4");
        if (m.offset)   /* O5: the stored y are the symbols; y_hat = y * 2^G + offset_q[c] */
            for (j = 0; j < y.n; j++) yhat.v[j] = o5_level(y.v[j], m.offset_q.v[j / hw], m.grid);
    }
    dump("entropy/y_sym", &ysym, "i4");
    dump("entropy/y_hat", &yhat, "i4");
    write_bytes("entropy/y.rans", ys, ylen);

    /* docs/BITSTREAM.md: header, K mu records, Lz, Ly, substreams, CRC-32 */
    flen = 30 + 3L * K + 8 + zlen + ylen + 4;
    f = (unsigned char *)xmalloc((size_t)flen);
    memcpy(f, "FXLC", 4);
    f[4] = 1;
    f[5] = (unsigned char)(hyper ? 0 : 1);
    memcpy(f + 6, id, 16);
    put16(f + 22, H);
    put16(f + 24, W);
    f[26] = 3;
    f[27] = (unsigned char)m.pad;
    put16(f + 28, K);
    off = 30;
    for (c = 0; c < m.M; c++)
        if (mask.v[c]) {
            put16(f + off, c);
            f[off + 2] = (unsigned char)(mu.v[c] & 255);
            off += 3;
        }
    put32(f + off, (uint32_t)zlen);
    put32(f + off + 4, (uint32_t)ylen);
    off += 8;
    if (zlen) memcpy(f + off, zs, (size_t)zlen);
    memcpy(f + off + zlen, ys, (size_t)ylen);
    off += zlen + ylen;
    put32(f + off, crc32(f, off));
    write_bytes("stream.fxl", f, flen);
    if (le32(f + off) != crc32(f, off)) die("internal error: CRC");
    printf("fxlic_enc: %s, %ldx%ld: stream.fxl %ld bytes (z %ld, y %ld) and encoder dumps in %s\n", m.name, W, H,
           flen, zlen, ylen, g_dump);
    free(f);
    free(zs);
    free(ys);
    return 0;
}

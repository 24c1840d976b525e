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
 *   fxlic_dec [-f npy|mem] [-w npy|bin] [-l chw|hwc] [-m MODEL_DIR] [--stream] [--no-acc] CASE_DIR DUMP_DIR
 *
 * -m MODEL_DIR: the model directory to use instead of case.txt's model_dir;
 * required for an external-model case (model_dir -, docs/VECTORS.md 6), e.g.
 * one written by `fxlic vectors --model NAME --model-only --out MODEL_DIR`.
 * When case.txt has a model_hash line, the directory's manifest.json must
 * have the same model_hash.
 *
 * -w bin reads the seven stored fields from the raw little-endian .bin files
 * (`fxlic vectors --bin`, docs/VECTORS.md 1) instead of the .npy: no header,
 * the dtype of each field is the one docs/VECTORS.md 3 lists and the element
 * count follows from arch.txt; -l hwc: the .bin was written with --layout hwc
 * (w_codes in O, KY, KX, C order).
 *
 * Offset latents (SPEC O5; arch.txt "latents offset", latents/offset_q): z
 * symbols are read through z * 2^G + offset_q[c] (HS0), the y symbols of a
 * hyperprior are decoded with the zero-mean family and ST0 reads the levels
 * symbol * 2^G + mean_q; without --stream they come from entropy/y_sym.npy (a
 * factorized model: y.npy holds the symbols, ST0 reads y * 2^G + offset_q[c]).
 *
 * SPEC O6 (spec 1.4): HA0 of an offset-latent hyperprior may read y on the
 * 2^-H grid (H = -HA0's in_exp); the decoder never runs h_a, so it reads only
 * HA0's in_exp, to check the directory (H > 0 needs fxlic-spec-1.4, a 1.3
 * directory has H = 0).
 *
 * Only the stored fields are read; every derived quantity (alignment
 * shifts, accumulator exponents, requantization shifts, decode tables,
 * codebooks) is computed here from the rules it cites.
 */
#include "fxlic_common.h"

/* ------------------------------------------------------------------ */
/* rANS decoder (docs/ENTROPY.md 6) and the .fxl container (BITSTREAM) */
/* ------------------------------------------------------------------ */

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

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

/* the value of the case.txt line KEY VALUE, or NULL (required: die) */
static const char *case_find(const char *casedir, const char *key, char *buf, size_t n, int required)
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
    if (required) die("%s: no %s", path, key);
    return NULL;
}

static const char *case_value(const char *casedir, const char *key, char *buf, size_t n)
{
    return case_find(casedir, key, buf, n, 1);
}

static void usage(void)
{
    fprintf(stderr, "usage: fxlic_dec [-f npy|mem] [-w npy|bin] [-l chw|hwc] [-m MODEL_DIR] [--stream] "
            "[--no-acc] CASE_DIR DUMP_DIR\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *casedir = NULL, *dumpdir = NULL, *mopt = NULL;
    char buf[PATHLEN], mdir[PATHLEN], path[PATHLEN], want[128], have_hash[128];
    int from_stream = 0, want_acc = 1, have_y = 0, i, li;
    long H, W, Hp, Wp, c, j;
    static model_t m;
    static arr_t tensors[MAXL];
    int have[MAXL];
    arr_t y, z, mu, ylev;
    int hyper, offset_hp;
    unsigned char *stream = NULL;
    const unsigned char *ys = NULL;
    long ylen = 0;

    memset(&y, 0, sizeof y);
    memset(&z, 0, sizeof z);
    memset(&ylev, 0, sizeof ylev);
    for (i = 1; i < argc; i++) {
        int io = parse_io_option(argc, argv, &i);
        if (io < 0) usage();
        if (io) continue;
        if (strcmp(argv[i], "--stream") == 0) from_stream = 1;
        else if (strcmp(argv[i], "--no-acc") == 0) want_acc = 0;
        else if (strcmp(argv[i], "-m") == 0 && i + 1 < argc) mopt = argv[++i];
        else if (argv[i][0] == '-') usage();
        else if (!casedir) casedir = argv[i];
        else if (!dumpdir) dumpdir = argv[i];
        else usage();
    }
    if (!casedir || !dumpdir) usage();
    if (strlen(dumpdir) >= sizeof g_dump) die("path too long");
    strcpy(g_dump, dumpdir);
    mkdirs(g_dump);
    g_prog = "fxlic_dec";
    init_codebooks();

    case_value(casedir, "model_dir", buf, sizeof buf);
    if (mopt) xsnprintf(mdir, sizeof mdir, "%s", mopt);           /* -m: given */
    else if (strcmp(buf, "-") == 0)
        die("%s: the case has no model directory (external model %s: give its model directory with -m; "
            "fxlic vectors --model NAME --model-only --out DIR writes it)", casedir,
            case_find(casedir, "model_file", buf, sizeof buf, 0) ? buf : "unknown");
    else if (buf[0] == '/') xsnprintf(mdir, sizeof mdir, "%s", buf);   /* absolute */
    else xsnprintf(mdir, sizeof mdir, "%s/%s", casedir, buf);     /* relative to the case */
    if (case_find(casedir, "model_hash", want, sizeof want, 0)) {  /* external model: the right one? */
        if (!model_dir_hash(mdir, have_hash, sizeof have_hash))
            die("%s/manifest.json: no model_hash to compare with the case's %s", mdir, want);
        if (strcmp(want, have_hash) != 0)
            die("%s: model directory of model %s, the case was made with %s", mdir, have_hash, want);
    }
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
    read_latents(&m, mdir);
    offset_hp = m.offset && hyper;

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
        if (offset_hp) {
            /* O5: the decoder's input is the coded y symbols (y.npy is the encoder's O3 y) */
            xsnprintf(path, sizeof path, "%s/entropy/y_sym.npy", casedir);
        } else xsnprintf(path, sizeof path, "%s/y.npy", casedir);
        y = read_npy(path);
        have_y = !offset_hp;
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
        if (m.offset) {  /* O5: z_hat = z * 2^G + offset_q[c] */
            long zhw = z.shape[1] * z.shape[2];
            arr_t zh = arr3(z.shape[0], z.shape[1], z.shape[2]);
            if (m.offset_q.n != z.shape[0]) die("offset_q has %ld channels, z %ld", m.offset_q.n, z.shape[0]);
            for (j = 0; j < z.n; j++) zh.v[j] = o5_level(z.v[j], m.offset_q.v[j / zhw], m.grid);
            dump("entropy/z_hat", &zh, "i4");
            free(zh.v);
        }
    }
    if (!from_stream && !offset_hp) dump("y", &y, "i1");
    if (!hyper) {
        /* factorized prior: y_hat = stored y + mu is coded directly, table = channel
         * (O5: the stored y are the symbols; y_hat is the level y * 2^G + offset_q[c]) */
        long hw = y.shape[1] * y.shape[2];
        arr_t yh = arr3(y.shape[0], y.shape[1], y.shape[2]), yi = yh;
        yi.v = channel_index(y.shape[0], hw);
        for (j = 0; j < y.n; j++) yh.v[j] = y.v[j] + mu.v[j / hw];
        dump("entropy/y_sym", &yh, "i4");
        if (m.offset) {
            if (m.offset_q.n != y.shape[0]) die("offset_q has %ld channels, y %ld", m.offset_q.n, y.shape[0]);
            for (j = 0; j < y.n; j++) yh.v[j] = o5_level(y.v[j], m.offset_q.v[j / hw], m.grid);
        }
        dump("entropy/y_hat", &yh, "i4");
        dump("entropy/y_idx", &yi, "i4");
        free(yh.v);
        free(yi.v);
    }

    /* h_s and g_s in layer-list order */
    for (li = 0; li < m.nl; li++) {
        layer_t *L = &m.L[li];
        arr_t acc, out;
        const arr_t *in;
        if (!L->loaded) continue;
        if (strcmp(L->src, "z_hat") == 0) {
            if (!hyper) die("%s reads z_hat in a factorized model", L->name);
            in = &z;
        } else if (L->in_kind == 2) {       /* O5: the levels symbol * 2^G + mean_q */
            if (!ylev.v) die("%s reads y_hat before it is decoded", L->name);
            in = &ylev;
        } else if (is_y(L->src)) {
            if (!have_y) die("%s reads y_hat before it is decoded", L->name);
            in = &y;
        } else {
            int p = find_layer(&m, L->src);
            if (p < 0 || !have[p]) die("%s: source %s not computed", L->name, L->src);
            in = &tensors[p];
        }
        run_layer(&m, L, in, is_y(L->src) ? mu.v : NULL, NULL, &acc, &out);
        dump_layer(&m, L, in, is_y(L->src) ? mu.v : NULL, &acc, &out, want_acc);
        free(acc.v);
        tensors[li] = out;
        have[li] = 1;

        if (strcmp(L->out, "ms") == 0) {
            /* SPEC E1 from the h_s output, then (--stream) the y symbols */
            e1_t e1;
            arr_t ysym, yhat;
            long hw = out.shape[1] * out.shape[2], e;
            entropy_e1(mdir, L, &out, m.M, offset_hp, &e1);
            ysym = arr3(m.M, out.shape[1], out.shape[2]);
            yhat = arr3(m.M, out.shape[1], out.shape[2]);
            if (offset_hp) {
                /* O5: symbols round(y - mean), zero-mean family; level symbol * 2^G + mean_q */
                if (from_stream) {
                    tables_t gauss;
                    read_tables(&gauss, mdir, "gauss");
                    rans_decode(ys, ylen, &gauss, e1.yidx.v, e1.yidx.n, ysym.v);
                } else {
                    if (y.n != ysym.n) die("entropy/y_sym and the h_s output have different sizes");
                    memcpy(ysym.v, y.v, sizeof(int64_t) * (size_t)y.n);
                }
                for (e = 0; e < ysym.n; e++) {
                    if (ysym.v[e] < -128 || ysym.v[e] > 127) die("corrupt stream: y symbol outside int8");
                    yhat.v[e] = o5_level(ysym.v[e], e1.means.v[e], m.grid);
                }
                ylev = yhat;
                yhat.v = NULL;
            } else if (from_stream) {
                tables_t gauss;
                read_tables(&gauss, mdir, "gauss");
                rans_decode(ys, ylen, &gauss, e1.yidx.v, e1.yidx.n, ysym.v);
                y = arr3(m.M, out.shape[1], out.shape[2]);
                for (e = 0; e < y.n; e++) {
                    yhat.v[e] = e1.ybase.v[e] + e1.ysign.v[e] * ysym.v[e];
                    y.v[e] = yhat.v[e] - mu.v[e / hw];
                    if (y.v[e] < -128 || y.v[e] > 127) die("corrupt stream: y outside its 8-bit range");
                }
                have_y = 1;
                dump("y", &y, "i1");
            } else {
                if (y.n != yhat.n) die("y and the h_s output have different sizes");
                for (e = 0; e < y.n; e++) {
                    yhat.v[e] = y.v[e] + mu.v[e / hw];
                    ysym.v[e] = e1.ysign.v[e] * (yhat.v[e] - e1.ybase.v[e]);
                }
            }
            dump_e1(&e1);
            dump("entropy/y_sym", &ysym, "i4");
            dump("entropy/y_hat", offset_hp ? &ylev : &yhat, "i4");
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

/* One decode step of a Llama-architecture transformer (the forward of simkit.flash's SmolLM2
 * model, which is Llama-shaped), bf16 weights and KV cache, f32 activations:
 *   llm_decode LAYERS DIM FFN HEADS VOCAB CTX     defaults 2 256 704 4 512 64 (tiny)
 * Llama-2-7B is 32 4096 11008 32 32000 CTX (12.6 GiB of weights; KV 2 x 32 x CTX x 8 KiB).
 * The step for the token at position CTX: embedding row; per layer: RMSNorm, q/k/v matvecs
 * (k and v written into the cache at CTX), RoPE, attention over CTX+1 cached keys and values
 * per head (scores, softmax, weighted sum), o matvec, residual, RMSNorm, gate and up matvecs,
 * SiLU product, down matvec, residual; final RMSNorm and the vocabulary matvec (argmax).
 * Layout (sktrace.h, in this order): embedding [VOCAB][DIM], per layer attn_norm, wq, wk, wv,
 * wo, ffn_norm, w_gate [FFN][DIM], w_up, w_down [DIM][FFN], the K and V caches
 * [HEADS][CTX+1][DIM/HEADS]; final norm, lm_head [VOCAB][DIM]; activations x, xb, q, hb, hb2,
 * att [HEADS][CTX+1], logits.  Weights and caches are mapped, not filled: a dense decode
 * step's access order does not depend on their values (untouched pages read as zeros), so a
 * 7B-shaped step runs without 13 GiB of resident memory.
 * Traced: every line a matvec reads (weight rows and the input vector, once per row, as the
 * loop reads them) and writes, the cache lines of every key and value, the activations; the
 * decode step has no data-dependent addresses (no dependence flags).  MIT licence (simkit). */
#include <math.h>
#include "sktrace.h"

typedef uint16_t bf16;
static inline float f32(bf16 h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static inline bf16 tobf(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (bf16)(u >> 16);
}

static uint64_t L, D, F, H, VOC, CTX, HD;

/* out[r] = W[r][:] . x  (W: rows x n bf16; one record per line of W and of x as read) */
static void matvec(float *out, const bf16 *W, const float *x, uint64_t rows, uint64_t n)
{
    SKT_STREAM(os);
    for (uint64_t r = 0; r < rows; r++) {
        const bf16 *w = &W[r * n];
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};   /* 8 lanes, as a SIMD kernel sums */
        for (uint64_t j = 0; j < n; j += 32) {        /* n is a multiple of 32 */
            SKT_RAND(&w[j], SKT_LOAD, 0);
            SKT_RAND(&x[j], SKT_LOAD, 0);
            SKT_RAND(&x[j + 16], SKT_LOAD, 0);
            for (uint64_t k = j; k < j + 32; k += 8)
                for (int e = 0; e < 8; e++)
                    acc[e] += f32(w[k + e]) * x[k + e];
        }
        SKT_SEQ(os, &out[r], SKT_STORE);
        out[r] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
    }
}

static void rmsnorm(float *out, const float *x, const float *w, uint64_t n)
{
    SKT_STREAM(xs); SKT_STREAM(ws); SKT_STREAM(os);
    float ss = 0.0f;
    for (uint64_t i = 0; i < n; i++) {
        SKT_SEQ(xs, &x[i], SKT_LOAD);
        ss += x[i] * x[i];
    }
    float scale = 1.0f / sqrtf(ss / (float)n + 1e-5f);
    for (uint64_t i = 0; i < n; i++) {
        SKT_SEQ(ws, &w[i], SKT_LOAD);
        SKT_SEQ(os, &out[i], SKT_STORE);
        out[i] = x[i] * scale * w[i];
    }
}

typedef struct {
    float *attn_norm, *ffn_norm;
    bf16 *wq, *wk, *wv, *wo, *wg, *wu, *wd, *kc, *vc;
} layer;

__attribute__((noinline)) uint64_t kernel(layer *ly, const bf16 *emb, const float *fnorm,
                                          const bf16 *head, float *x, float *xb, float *q,
                                          float *kv, float *hb, float *hb2, float *att,
                                          float *logits, uint32_t token)
{
    uint64_t pos = CTX, T = CTX + 1;
    SKT_STREAM(es); SKT_STREAM(xw);
    for (uint64_t i = 0; i < D; i++) {
        SKT_SEQ(es, &emb[token * D + i], SKT_LOAD);
        SKT_SEQ(xw, &x[i], SKT_STORE);
        x[i] = f32(emb[token * D + i]);
    }
    for (uint64_t l = 0; l < L; l++) {
        layer *y = &ly[l];
        rmsnorm(xb, x, y->attn_norm, D);
        matvec(q, y->wq, xb, D, D);
        matvec(kv, y->wk, xb, D, D);
        matvec(kv + D, y->wv, xb, D, D);
        for (uint64_t h = 0; h < H; h++) {          /* RoPE on q and k, cache the new k, v */
            SKT_STREAM(qs); SKT_STREAM(ks); SKT_STREAM(vs); SKT_STREAM(kw); SKT_STREAM(vw);
            for (uint64_t i = 0; i < HD; i += 2) {
                float fr = 1.0f / powf(10000.0f, (float)i / (float)HD), a = (float)pos * fr;
                float c = cosf(a), s = sinf(a);
                float *qq = &q[h * HD + i], *kk = &kv[h * HD + i];
                SKT_SEQ(qs, qq, SKT_MODIFY);
                SKT_SEQ(ks, kk, SKT_LOAD);
                float q0 = qq[0], q1 = qq[1], k0 = kk[0], k1 = kk[1];
                qq[0] = q0 * c - q1 * s;
                qq[1] = q0 * s + q1 * c;
                bf16 *kd = &y->kc[(h * T + pos) * HD + i], *vd = &y->vc[(h * T + pos) * HD + i];
                SKT_SEQ(kw, kd, SKT_STORE);
                kd[0] = tobf(k0 * c - k1 * s);
                kd[1] = tobf(k0 * s + k1 * c);
                SKT_SEQ(vs, &kv[D + h * HD + i], SKT_LOAD);
                SKT_SEQ(vw, vd, SKT_STORE);
                vd[0] = tobf(kv[D + h * HD + i]);
                vd[1] = tobf(kv[D + h * HD + i + 1]);
            }
        }
        for (uint64_t h = 0; h < H; h++) {          /* attention, head by head */
            const float *qh = &q[h * HD];
            float *ah = &att[h * T], mx = -INFINITY;
            SKT_STREAM(aw);
            for (uint64_t t = 0; t < T; t++) {
                const bf16 *k = &y->kc[(h * T + t) * HD];
                float sc = 0.0f;
                for (uint64_t i = 0; i < HD; i += 32) {
                    SKT_RAND(&k[i], SKT_LOAD, 0);
                    SKT_RAND(&qh[i], SKT_LOAD, 0);
                    SKT_RAND(&qh[i + 16], SKT_LOAD, 0);
                    for (uint64_t j = i; j < i + 32 && j < HD; j++)
                        sc += f32(k[j]) * qh[j];
                }
                sc /= sqrtf((float)HD);
                SKT_SEQ(aw, &ah[t], SKT_STORE);
                ah[t] = sc;
                mx = sc > mx ? sc : mx;
            }
            SKT_STREAM(am);
            float sum = 0.0f;
            for (uint64_t t = 0; t < T; t++) {
                SKT_SEQ(am, &ah[t], SKT_MODIFY);
                ah[t] = expf(ah[t] - mx);
                sum += ah[t];
            }
            float *o = &xb[h * HD];
            for (uint64_t i = 0; i < HD; i++)
                o[i] = 0.0f;
            SKT_STREAM(ar);
            for (uint64_t t = 0; t < T; t++) {
                const bf16 *v = &y->vc[(h * T + t) * HD];
                SKT_SEQ(ar, &ah[t], SKT_LOAD);
                float a = ah[t] / sum;
                for (uint64_t i = 0; i < HD; i += 32) {
                    SKT_RAND(&v[i], SKT_LOAD, 0);
                    SKT_RAND(&o[i], SKT_MODIFY, 0);
                    SKT_RAND(&o[i + 16], SKT_MODIFY, 0);
                    for (uint64_t j = i; j < i + 32 && j < HD; j++)
                        o[j] += a * f32(v[j]);
                }
            }
        }
        matvec(q, y->wo, xb, D, D);                 /* q reused as the attention output */
        SKT_STREAM(r1); SKT_STREAM(r2);
        for (uint64_t i = 0; i < D; i++) {
            SKT_SEQ(r1, &q[i], SKT_LOAD);
            SKT_SEQ(r2, &x[i], SKT_MODIFY);
            x[i] += q[i];
        }
        rmsnorm(xb, x, y->ffn_norm, D);
        matvec(hb, y->wg, xb, F, D);
        matvec(hb2, y->wu, xb, F, D);
        SKT_STREAM(g1); SKT_STREAM(g2);
        for (uint64_t i = 0; i < F; i++) {
            SKT_SEQ(g1, &hb[i], SKT_MODIFY);
            SKT_SEQ(g2, &hb2[i], SKT_LOAD);
            float g = hb[i];
            hb[i] = g / (1.0f + expf(-g)) * hb2[i];
        }
        matvec(q, y->wd, hb, D, F);
        SKT_STREAM(r3); SKT_STREAM(r4);
        for (uint64_t i = 0; i < D; i++) {
            SKT_SEQ(r3, &q[i], SKT_LOAD);
            SKT_SEQ(r4, &x[i], SKT_MODIFY);
            x[i] += q[i];
        }
    }
    rmsnorm(xb, x, fnorm, D);
    matvec(logits, head, xb, VOC, D);
    uint64_t best = 0;
    SKT_STREAM(ls);
    for (uint64_t i = 0; i < VOC; i++) {
        SKT_SEQ(ls, &logits[i], SKT_LOAD);
        if (logits[i] > logits[best])
            best = i;
    }
    return best;
}

int main(int argc, char **argv)
{
    L = skt_arg(argc, argv, 1, 2);
    D = skt_arg(argc, argv, 2, 256);
    F = skt_arg(argc, argv, 3, 704);
    H = skt_arg(argc, argv, 4, 4);
    VOC = skt_arg(argc, argv, 5, 512);
    CTX = skt_arg(argc, argv, 6, 64);
    if (L < 1 || L > 256 || D < 32 || D % 32 || F < 32 || F % 32 || H < 1 || D % H
        || (D / H) % 32 || VOC < 1 || CTX > (1ULL << 20)) {
        fprintf(stderr, "llm_decode: DIM and FFN multiples of 32, DIM/HEADS a multiple of 32, "
                        "LAYERS in 1..256, VOCAB >= 1, CTX <= 2^20\n");
        return 2;
    }
    HD = D / H;
    uint64_t T = CTX + 1;
    bf16 *emb = skt_alloc(VOC * D * 2);
    layer *ly = calloc(L, sizeof *ly);
    for (uint64_t l = 0; l < L; l++) {
        ly[l].attn_norm = skt_alloc(D * 4);
        ly[l].wq = skt_alloc(D * D * 2);
        ly[l].wk = skt_alloc(D * D * 2);
        ly[l].wv = skt_alloc(D * D * 2);
        ly[l].wo = skt_alloc(D * D * 2);
        ly[l].ffn_norm = skt_alloc(D * 4);
        ly[l].wg = skt_alloc(F * D * 2);
        ly[l].wu = skt_alloc(F * D * 2);
        ly[l].wd = skt_alloc(D * F * 2);
        ly[l].kc = skt_alloc(H * T * HD * 2);
        ly[l].vc = skt_alloc(H * T * HD * 2);
        for (uint64_t i = 0; i < D; i++)
            ly[l].attn_norm[i] = ly[l].ffn_norm[i] = 1.0f;
    }
    float *fnorm = skt_alloc(D * 4);
    for (uint64_t i = 0; i < D; i++)
        fnorm[i] = 1.0f;
    bf16 *head = skt_alloc(VOC * D * 2);
    float *x = skt_alloc(D * 4), *xb = skt_alloc(D * 4), *q = skt_alloc(D * 4);
    float *kv = skt_alloc(2 * D * 4), *hb = skt_alloc(F * 4), *hb2 = skt_alloc(F * 4);
    float *att = skt_alloc(H * T * 4), *logits = skt_alloc(VOC * 4);
    SKT_BEGIN(argc, argv);
    uint64_t best = kernel(ly, emb, fnorm, head, x, xb, q, kv, hb, hb2, att, logits,
                           (uint32_t)(VOC / 3));
    SKT_END();
    printf("llm_decode layers %llu dim %llu ffn %llu heads %llu vocab %llu ctx %llu "
           "next %llu mapped %llu\n", (unsigned long long)L, (unsigned long long)D,
           (unsigned long long)F, (unsigned long long)H, (unsigned long long)VOC,
           (unsigned long long)CTX, (unsigned long long)best,
           (unsigned long long)(skt_next_addr - SKT_BASE));
    free(ly);
    return 0;
}

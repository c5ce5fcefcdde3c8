/* Blocked (tiled) dense matrix multiply C += A * B, 256 x 256 doubles (512 KiB per matrix),
 * 32 x 32 tiles, loop order ii-kk-jj-i-k-j. The traced region is kernel(); the matrices are
 * filled before it. Deterministic, prints a checksum of C. MIT licence (simkit). */
#include <stdio.h>
#include <stdlib.h>

#define N 256
#define BS 32

__attribute__((noinline)) void kernel(const double *A, const double *B, double *C)
{
    for (int ii = 0; ii < N; ii += BS)
        for (int kk = 0; kk < N; kk += BS)
            for (int jj = 0; jj < N; jj += BS)
                for (int i = ii; i < ii + BS; i++)
                    for (int k = kk; k < kk + BS; k++) {
                        double a = A[i * N + k];
                        for (int j = jj; j < jj + BS; j++)
                            C[i * N + j] += a * B[k * N + j];
                    }
}

int main(void)
{
    double *A = malloc(N * N * sizeof *A);
    double *B = malloc(N * N * sizeof *B);
    double *C = malloc(N * N * sizeof *C);
    if (!A || !B || !C)
        return 1;
    for (int i = 0; i < N * N; i++) {
        A[i] = (i % 17) * 0.25;
        B[i] = ((i * 7) % 13) * 0.5;
        C[i] = 0.0;
    }
    kernel(A, B, C);
    double sum = 0.0;
    for (int i = 0; i < N * N; i++)
        sum += C[i] * ((i % 5) + 1);
    printf("matmul checksum %.6f\n", sum);
    free(A);
    free(B);
    free(C);
    return 0;
}

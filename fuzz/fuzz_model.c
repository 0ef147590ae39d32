/* fuzz_model.c — libFuzzer target for the model loader (safetensors, SPEC §5).
 *
 * Input: the bytes of a model file. ld_model_load must refuse anything malformed
 * with a message, and whatever it accepts must be a usable model:
 *   - an inference forward pass on one all-grey input runs, and its probability is in
 *     [0, 1] (or NaN: finite but huge weights may overflow, which is not a parse error);
 *   - saving it and loading the saved file again succeeds and reproduces every
 *     parameter bit for bit (the loader accepts what the writer writes). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "lymphdet/model.h"
#include "fuzz_util.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    fuzz_make_dir("model");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[512], copy[512];
    ld_model m, m2;
    ld_error err = {0};
    fuzz_write(path, sizeof path, "in.safetensors", data, size);
    if (ld_model_load(&m, path, 1, &err) != LD_OK) {
        if (!err.msg[0]) abort();
        return 0;
    }
    size_t side = (size_t)m.arch.input_size, n_in = (size_t)m.arch.in_channels * side * side;
    float *x = malloc(n_in * sizeof *x);    /* [1, C, S, S] */
    if (!x) abort();
    for (size_t i = 0; i < n_in; i++) x[i] = 0.5f;
    float p = -1;
    ld_model_predict(&m, x, 1, &p);
    free(x);
    if (!isnan(p) && !(p >= 0 && p <= 1)) abort();

    snprintf(copy, sizeof copy, "%s/copy.safetensors", fuzz_dir);
    if (ld_model_save(&m, copy, &err) != LD_OK) abort();
    if (ld_model_load(&m2, copy, 1, &err) != LD_OK) abort();
    if (m2.n_params != m.n_params ||
        memcmp(m2.params, m.params, m.n_params * sizeof *m.params) != 0)
        abort();
    ld_model_free(&m2);
    ld_model_free(&m);
    return 0;
}

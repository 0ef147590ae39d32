/* detect_opts.c — the detector options of detect, evaluate and crossval (see
 * detect_opts.h). */
#include <stdio.h>
#include <string.h>
#include "detect_opts.h"
#include "lymphdet/dettrain.h"

void detect_opts_default(detect_opts *o)
{
    ld_detect_config_default(&o->cfg);
    o->merge = ld_merge_name(o->cfg.merge);
    o->scales = "1";
}

void detect_opts_table(cli_opt *table, detect_opts *o)
{
    cli_opt t[DETECT_OPT_COUNT] = {
        {"threshold", OPT_DOUBLE, &o->cfg.threshold, "P", "a window is positive when p > P", 0},
        {"merge", OPT_STRING, &o->merge, "MODE", "none|nms|cluster", 0},
        {"nms-iou", OPT_DOUBLE, &o->cfg.nms_iou, "X", "NMS suppresses boxes with IoU > X", 0},
        {"cluster-iou", OPT_DOUBLE, &o->cfg.cluster_iou, "X",
         "cluster joins windows with IoU > X (0: any overlap)", 0},
        {"scales", OPT_STRING, &o->scales, "LIST", "resize factors, e.g. 2,1.41,1,0.71,0.5,0.35", 0},
        {"stride", OPT_INT, &o->cfg.stride, "N", "window step in pixels (divides 8, or a multiple)", 0},
    };
    memcpy(table, t, sizeof t);
}

int detect_opts_finish(const char *cmd, detect_opts *o)
{
    int mode = ld_merge_parse(o->merge);
    if (mode < 0)
        return cli_usage_error(cmd, "--merge must be none, nms or cluster, not '%s'", o->merge);
    o->cfg.merge = (ld_merge_mode)mode;
    ld_error err = {0};
    if (ld_detect_parse_scales(&o->cfg, o->scales, &err)) return cli_usage_error(cmd, "--%s", err.msg);
    return -1;
}

/* 1 when --NAME (or --NAME=...) is on the command line */
static int given(int argc, char **argv, const char *name)
{
    size_t n = strlen(name);
    for (int i = 1; i < argc; i++)
        if (strncmp(argv[i], "--", 2) == 0 && strncmp(argv[i] + 2, name, n) == 0 &&
            (argv[i][2 + n] == '\0' || argv[i][2 + n] == '='))
            return 1;
    return 0;
}

int detect_opts_from_model(const char *cmd, detect_opts *o, const ld_model *m, int argc,
                           char **argv)
{
    ld_detect_config mc;
    ld_error err = {0};
    if (ld_detect_config_from_model(&mc, m, &err)) return cli_fail(cmd, &err);
    ld_detect_config *cfg = &o->cfg;
    if (!given(argc, argv, "threshold")) cfg->threshold = mc.threshold;
    if (!given(argc, argv, "nms-iou")) cfg->nms_iou = mc.nms_iou;
    if (!given(argc, argv, "merge")) cfg->merge = mc.merge;
    if (!given(argc, argv, "stride")) cfg->stride = mc.stride;
    if (!given(argc, argv, "scales")) {
        cfg->n_scales = mc.n_scales;
        memcpy(cfg->scales, mc.scales, sizeof cfg->scales);
    }
    return 0;
}

void detect_opts_describe(char *buf, size_t size, const ld_detect_config *cfg)
{
    int n = snprintf(buf, size, "window p > %g, merge %s (NMS IoU %g, cluster IoU %g), stride %d, "
                     "scales ", cfg->threshold, ld_merge_name(cfg->merge), cfg->nms_iou,
                     cfg->cluster_iou, cfg->stride);
    for (int k = 0; k < cfg->n_scales && n >= 0 && (size_t)n < size; k++)
        n += snprintf(buf + n, size - (size_t)n, k ? ",%.4g" : "%.4g", cfg->scales[k]);
}

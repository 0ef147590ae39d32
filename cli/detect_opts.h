/* detect_opts.h — the detector options `detect`, `evaluate` and `crossval` share:
 * threshold, merging, pyramid and stride (ld_detect_config in detect.h).
 *
 * A model trained with the detection preset records the settings its training
 * tuned (ld_detect_config_from_model); detect_opts_from_model lets them replace
 * the defaults of every option the user did not give, so `detect` and `evaluate`
 * run a model as it was tuned unless told otherwise. */
#ifndef LYMPHDET_CLI_DETECT_OPTS_H
#define LYMPHDET_CLI_DETECT_OPTS_H

#include <stddef.h>
#include "cli.h"
#include "lymphdet/detect.h"
#include "lymphdet/model.h"

typedef struct {
    ld_detect_config cfg;
    const char *merge;      /* --merge as given, parsed into cfg by detect_opts_finish */
    const char *scales;     /* --scales as given, likewise */
} detect_opts;

#define DETECT_OPT_COUNT 6

void detect_opts_default(detect_opts *o);
/* fills table[0..DETECT_OPT_COUNT) with the shared options */
void detect_opts_table(cli_opt *table, detect_opts *o);
/* Parses --merge and --scales into o->cfg after cli_parse. Returns -1 to go on, or
 * 2 after printing a usage error. */
int detect_opts_finish(const char *cmd, detect_opts *o);
/* Settings recorded in the model file replace those of the options that argv does
 * not give. Returns 0, or 1 after printing the error (malformed metadata). */
int detect_opts_from_model(const char *cmd, detect_opts *o, const ld_model *m, int argc,
                           char **argv);
/* One line saying what the detector does, e.g. for a report:
 * "window p > 0.95, merge nms (NMS IoU 0.3, cluster IoU 0), stride 8, scales 1,0.71" */
void detect_opts_describe(char *buf, size_t size, const ld_detect_config *cfg);

#endif

/* main.c — the lymphdet command: a table of subcommands (SPEC §4), one file each. */
#include <stdio.h>
#include <string.h>
#include "cli.h"

/* in pipeline order; the NULL row ends the table */
static const cli_command commands[] = {
    {"inspect",  "summarise labels and images; list every problem before training", cmd_inspect},
    {"patches",  "write the patch dataset as PNG files plus patches.csv", cmd_patches},
    {"train",    "train the detector (default) or, --preset paper, the paper's patch CNN", cmd_train},
    {"detect",   "find nodes in whole frames; write COCO results (and overlays)", cmd_detect},
    {"evaluate", "measure a model or COCO results: metrics.json, charts, report.html", cmd_evaluate},
    {"crossval", "grouped k-fold cross-validation: train and evaluate every fold", cmd_crossval},
    {"classify", "print the network's probability for each patch image", cmd_classify},
    {"info",     "show a model file: architecture, parameters, training metadata", cmd_info},
    {NULL, NULL, NULL}
};

static void usage(FILE *f)
{
    fprintf(f, "lymphdet %s — malignant lymph node detection in ultrasound images\n"
               "(Taciuc et al. 2025, reproduced and extended)\n\n"
               "usage: lymphdet COMMAND [OPTIONS]   (lymphdet COMMAND --help for its options)\n\n"
               "commands:\n", LD_VERSION);
    for (int i = 0; commands[i].name; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(argv[1], "--version") == 0) {
        printf("lymphdet %s\n", LD_VERSION);
        return 0;
    }
    for (int i = 0; commands[i].name; i++)
        if (strcmp(argv[1], commands[i].name) == 0) return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "lymphdet: unknown command '%s'\n\n", argv[1]);
    usage(stderr);
    return 2;
}

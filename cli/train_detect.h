/* train_detect.h — `lymphdet train --preset detect`, reached from cmd_train. */
#ifndef LYMPHDET_CLI_TRAIN_DETECT_H
#define LYMPHDET_CLI_TRAIN_DETECT_H

/* 1 unless argv (a `train` command line) asks for --preset paper: detect is the
 * default preset. */
int train_wants_detect(int argc, char **argv);
/* The whole command for the detection preset: argv as `train` received it. */
int cmd_train_detect(int argc, char **argv);

#endif

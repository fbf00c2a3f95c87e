// param_groups.h - the official X-CLIP optimiser rules (utils/optimizer.py; docs/model.md §9):
//   learning rate: group 1 (10x the base rate) for the tensors X-CLIP adds to CLIP (xclip_is_new_tensor: names
//   containing "message_", "mit" or "prompts"), group 0 for CLIP's;
//   weight decay: none for 1-D tensors, names ending in ".bias" and names containing "positional_embedding"
//   (0-d tensors such as logit_scale are decayed, as in the official code).
// The trainer applies them through xclip_step_groups (train/step.h); a plain AdamW gets them from
// xclip_adamw_groups:
//
//   adamw_init(&opt, &ps, cfg);
//   xclip_adamw_groups(&opt);                        // group and decay switch of every parameter by name
//   adamw_step(&opt, (float[]){lr, 10 * lr});        // CLIP's tensors at lr, X-CLIP's additions at 10 lr
#pragma once
#include <stdbool.h>
#include "optim/adamw.h"

bool xclip_decays(const char *name, int ndim);
void xclip_adamw_groups(AdamW *opt);

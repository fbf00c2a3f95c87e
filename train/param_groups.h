// param_groups.h - the official X-CLIP optimiser rules (utils/optimizer.py; SPEC.md §9):
//   learning rate: 10x the base rate for names containing "message_", "mit" or "prompts";
//   weight decay: none for 1-D tensors, names ending in ".bias" and names containing
//   "positional_embedding" (0-d tensors such as logit_scale are decayed, as in the official code).
//
//   adamw_init(&opt, &ps, cfg);
//   xclip_param_groups(&opt);        // sets lr_scale and decay of every parameter by name
#pragma once
#include "optim/adamw.h"

float xclip_lr_scale(const char *name);
bool xclip_decays(const char *name, int ndim);
void xclip_param_groups(AdamW *opt);

# experiments/studies.sh - every parameter of the studies, in one place (sourced by experiments/run).
# Run counts: `experiments/run all --dry-run`; what each study compares: experiments/README.md.

# ---- inputs ------------------------------------------------------------------------------------------------
SOURCE_CONFIG=experiments/configs/source.ini     # X-CLIP on the source videos (fully supervised)
FEWSHOT_CONFIG=experiments/configs/fewshot.ini   # X-CLIP few-shot on a target dataset
PRETRAIN_CONFIG=configs/pretrain_world.ini       # the CLIP every run starts from (a prerequisite, ~1 h)
TEMPLATES=experiments/prompts/templates.txt      # the hand-crafted template ensemble (prompts study)

# ---- sizes -------------------------------------------------------------------------------------------------
SEEDS=3                       # seeds per setting (--seeds N); seed s sets train.seed = data.shot_seed = s, s = 1..N
SOURCE_SHOTS=16               # videos per class in every source run (of the world's 100)
FEWSHOT_K="2 4 8 16"          # few-shot study: K per class
FEWSHOT_DATASETS="target_hmdb target_ucf"
REGIME_K="2 8"                # branches and prompts: the few-shot regime, K per class on REGIME_DATASET
REGIME_DATASET=target_hmdb
ZS_SPLITS="1 2 3"             # zero-shot splits of the world (zeroshot/splitI_{test.txt,labels.csv})

# ---- --quick: the same studies, tiny (CI: test_experiments_quick) -------------------------------------------
QUICK_SEEDS=1
QUICK_SOURCE_SHOTS=4
QUICK_FEWSHOT_K="2 4"
QUICK_REGIME_K="2 4"
QUICK_EPOCHS=2                # train.epochs of every quick run (the full recipes warm up for 1 epoch:
QUICK_WARMUP=0.5              #   a 1-epoch run at warm-up 1 would train at a rate near 0 throughout)
QUICK_PRETRAIN_CONFIG=experiments/configs/pretrain_quick.ini
QUICK_WORLD_OPTS="--images 4096 --val-images 256 --probe-per-combo 2 --source-train 8 --source-val 4 --target-train 8 --target-test 4 --zeroshot-test 4"

# ---- methods: "name|--set list" (space-separated section.key=value; empty = the base config = X-CLIP) --------
# @SIZES@ = model.arch=custom and the pretrained CLIP's sizes (read from the pretraining config);
# @TEMPLATES@ = the template file above (its content is part of the run's hash).
# Two methods with the same --set list on the same data are the same run (one hash): the X-CLIP source run is
# "X-CLIP" of components, "both" of branches and "video-specific" of prompts; "+MIT" is "name only" on the source.
COMPONENTS=(                  # fully supervised on the source, evaluated on source/val.txt
  "baseline|model.cct=false model.mit_layers=0 model.prompt_layers=0"
  "+cct|model.mit_layers=0 model.prompt_layers=0"
  "+MIT|model.prompt_layers=0"
  "X-CLIP|"
)
FEWSHOT=(                     # FEWSHOT_DATASETS x FEWSHOT_K, tested on test.txt
  "X-CLIP|"
  "discrete labels|model.head=linear model.prompt_layers=0 model.fix_text=true"
  "CLIP mean pooling|model.cct=false model.mit_layers=0 model.prompt_layers=0"
  "X-CLIP random init|model.pretrained=none @SIZES@"
)
BRANCHES=(                    # source + REGIME_DATASET x REGIME_K (the base configs train both: fix_text = false)
  "vision|model.fix_text=true"
  "text|model.fix_vision=true"
  "both|"
)
PROMPTS=(                     # REGIME_DATASET x REGIME_K, and zero-shot after source fine-tuning
  "name only|model.prompt_layers=0"
  "template ensemble|model.prompt_layers=0 data.templates=@TEMPLATES@"
  "CoOp|model.prompt_layers=0 model.context_tokens=4"
  "video-specific|"
)
# zero-shot: each seed's source run of these methods (by their --set list), evaluated on ZS_SPLITS from its
# last.safetensors; plus the pretrained CLIP alone (CLIP + mean pooling, no video training).
ZEROSHOT=(
  "X-CLIP|"
  "CLIP mean pooling (fine-tuned)|model.cct=false model.mit_layers=0 model.prompt_layers=0"
)

// The Trainer's parts that are not templates (the rank's share of an epoch, its loader, the evaluation's
// metric sums, the CUDA-graph policy, ...) compiled once for the compiled mode.
#include "resnet/train/agreement_inl.hpp"
#include "resnet/train/epoch_data_inl.hpp"
#include "resnet/train/evaluate_inl.hpp"
#include "resnet/train/graph_policy_inl.hpp"
#include "resnet/train/graph_step_inl.hpp"
#include "resnet/train/loss_reader_inl.hpp"
#include "resnet/train/options_inl.hpp"
#include "resnet/train/run_state_inl.hpp"
#include "resnet/train/shard_inl.hpp"

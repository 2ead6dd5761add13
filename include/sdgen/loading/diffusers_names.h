// diffusers' module names next to sdgen's, as tables generated from a model's real block layout
// (what diffusers' convert_ldm_unet_checkpoint, convert_ldm_vae_checkpoint and
// convert_ldm_clip_checkpoint do, in src/diffusers/loaders/single_file_utils.py).
//
// sdgen's module trees are named as LDM checkpoints name them, without the component prefix
// ("input_blocks.1.0.in_layers.2.weight" in the UNet, "encoder.layers.0.mlp.fc1.weight" in the
// CLIP text encoder). A table is a list of {diffusers prefix, sdgen prefix} pairs, every prefix
// ending with '.', to be applied longest prefix first: a ResBlock has both its block pair
// ("down_blocks.0.resnets.0." -> "input_blocks.1.0.") and its renamed layers
// ("down_blocks.0.resnets.0.conv1." -> "input_blocks.1.0.in_layers.2."); names below a pair
// are the same on both sides (transformer blocks, attention projections, CLIP layers). Every
// parameter name of the model resolves through its table, in both directions.
//
// Users: the diffusers folder loader (KeyMap rules from these tables) and LoRA files, whose
// kohya names are diffusers paths with '.' read as '_' ("lora_unet_down_blocks_0_attentions_1_
// proj_in" is the UNet's "input_blocks.2.1.proj_in"): map each module name of the loaded
// model with ldm_to_diffusers() and compare.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "sdgen/models/config.h"

namespace sdgen {

// {diffusers prefix, sdgen (LDM) prefix} pairs.
using DiffusersNameTable = std::vector<std::pair<std::string, std::string>>;

// UNet2DConditionModel -> the LDM UNet of `c`, level by level from channel_mult,
// num_res_blocks (diffusers' layers_per_block) and attention_resolutions:
//   conv_in. -> input_blocks.0.0.;  time_embedding.linear_1. / linear_2. -> time_embed.0. / 2.;
//   conv_norm_out. / conv_out. -> out.0. / out.2.;  add_embedding.linear_1. / linear_2. ->
//   label_emb.0.0. / label_emb.0.2. (only with a label_emb: adm_in_channels > 0);
//   down_blocks.L.resnets.J. -> input_blocks.(1 + L*(R+1) + J).0. (R = num_res_blocks),
//   down_blocks.L.attentions.J. -> input_blocks.(same).1. where level L has attention,
//   down_blocks.L.downsamplers.0.conv. -> input_blocks.(1 + L*(R+1) + R).0.op. (not the last);
//   mid_block.resnets.0. / attentions.0. / resnets.1. -> middle_block.0. / 1. / 2.;
//   up_blocks.B.resnets.J. -> output_blocks.(B*(R+1) + J).0. (J = 0..R; B = 0 is the deepest
//   level), up_blocks.B.attentions.J. -> output_blocks.(same).1. where that level has
//   attention, up_blocks.B.upsamplers.0.conv. -> output_blocks.(B*(R+1) + R).1.conv., or .2.conv.
//   behind an attention (diffusers finds the upsampler as the block's [conv.bias, conv.weight]
//   entry); not for the last up block.
// Every ResBlock pair comes with its renamed layers: norm1 -> in_layers.0, conv1 -> in_layers.2,
// time_emb_proj -> emb_layers.1, norm2 -> out_layers.0, conv2 -> out_layers.3, conv_shortcut ->
// skip_connection (listed for every ResBlock; only those whose channels change have one).
// SD 1.5 (channel_mult {1, 2, 4, 4}, 2 res blocks, attention at 4, 2, 1): down_blocks.1.
// attentions.0. -> input_blocks.4.1., up_blocks.3.resnets.2. -> output_blocks.11.0.,
// up_blocks.0.upsamplers.0.conv. -> output_blocks.2.1.conv., up_blocks.1.upsamplers.0.conv. ->
// output_blocks.5.2.conv.
DiffusersNameTable unet_diffusers_to_ldm(const UNetConfig& c);

// CLIPTextModel (transformers) -> sdgen's ClipTextModel: text_model.embeddings. -> embeddings.,
// text_model.encoder.layers.N. -> encoder.layers.N. (N < c.layers), text_model.final_layer_norm.
// -> final_layer_norm. In a single file these sit under "cond_stage_model.transformer.
// text_model."; text_model.embeddings.position_ids is not a parameter (transformers does not
// save it, sdgen does not need it).
DiffusersNameTable clip_diffusers_to_ldm(const ClipTextConfig& c);

// AutoencoderKL -> the LDM VAE of `c`: conv_in, conv_out, quant_conv and post_quant_conv as
// named, {encoder,decoder}.conv_norm_out. -> .norm_out.,
// encoder.down_blocks.L.resnets.J. -> encoder.down.L.block.J., encoder.down_blocks.L.
// downsamplers.0.conv. -> encoder.down.L.downsample.conv., decoder.up_blocks.B.* ->
// decoder.up.(levels-1-B).* (diffusers counts the decoder's levels from the deepest), resnet
// conv_shortcut -> nin_shortcut, mid_block.resnets.0. / 1. -> mid.block_1. / block_2.,
// mid_block.attentions.0.: group_norm -> attn_1.norm, to_q / to_k / to_v / to_out.0 ->
// q / k / v / proj_out (diffusers < 0.14 wrote query / key / value / proj_attn:
// `legacy_attention_names`). The attention projections are 1x1 convolutions in sdgen and
// Linear weights in diffusers: vae_attention_is_linear() tells those pairs.
DiffusersNameTable vae_diffusers_to_ldm(const VaeConfig& c, bool legacy_attention_names = false);
// Whether the sdgen prefix `ldm_prefix` of a VAE table pair is one of the mid-block attention's
// 1x1 convolutions (q, k, v, proj_out), stored as Linear weights [C, C] in diffusers files.
bool vae_attention_is_linear(const std::string& ldm_prefix);

// `name` (a diffusers module or parameter name, with or without a trailing '.') renamed by the
// longest diffusers prefix of `table` that `name + "."` starts with; "" when none does.
std::string diffusers_to_ldm(const DiffusersNameTable& table, const std::string& name);
// The reverse: an sdgen (LDM) name renamed by the longest sdgen prefix; "" when none matches.
std::string ldm_to_diffusers(const DiffusersNameTable& table, const std::string& name);

}  // namespace sdgen

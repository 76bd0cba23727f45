// peft: LoRA adapters as Hugging Face PEFT saves them, so other tools load them:
// DIR/adapter_model.safetensors (F32) with, per layer and target,
//   base_model.model.model.layers.L.self_attn.{q,k,v,o}_proj.lora_{A,B}.weight
//   base_model.model.model.layers.L.mlp.{gate,down,up}_proj.lora_{A,B}.weight
// (A [r, in], B [out, r]) and DIR/adapter_config.json (r, lora_alpha,
// lora_dropout, target_modules, base_model_name_or_path). The tensors are in
// Hugging Face's conventions, as `anetrain export --format hf` writes the
// base: lora_B of q/k of a llama2.c model (interleaved RoPE) has its rows in
// rotate-half order, and a residual scale is folded into lora_B of o and down.
#pragma once
#include "model/lora.h"

// -1 with err_msg() (trained norms have no place in the format: refused).
int peft_save(const Params *a, const LoraConfig *lc, const char *base, const char *dir);

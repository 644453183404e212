// check-powershell.mjs parses every .ps1, .psm1 and .psd1 file under scripts/
// with the tree-sitter PowerShell grammar and exits 1, naming the file, line
// and column of each ERROR or MISSING node, when any file does not parse.
//
// The grammar is found in $CP_NPM_DIR (default .tools/npm at the repository
// root), where `scripts/install-tools.sh powershell-grammar` installs it.
// Usage: node scripts/check-powershell.mjs [dir...]
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const npmDir = resolve(process.env.CP_NPM_DIR || join(root, '.tools', 'npm'));

// ESM ignores NODE_PATH: resolve the packages from npmDir explicitly.
async function load(name) {
  const require = createRequire(join(npmDir, 'package.json'));
  let path;
  try {
    path = require.resolve(name);
  } catch {
    console.error(`check-powershell: ${name} is not installed in ${npmDir}; run scripts/install-tools.sh powershell-grammar`);
    process.exit(2);
  }
  const mod = await import(pathToFileURL(path).href);
  return mod.default ?? mod;
}

const Parser = await load('tree-sitter');
const PowerShell = await load('tree-sitter-powershell');

function* psFiles(dir) {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) {
      if (e.name !== 'node_modules' && !e.name.startsWith('.')) yield* psFiles(p);
    } else if (/\.(ps1|psm1|psd1)$/i.test(e.name)) {
      yield p;
    }
  }
}

// problems lists the ERROR and MISSING nodes of tree, outermost first.
function problems(tree) {
  const out = [];
  const stack = [tree.rootNode];
  while (stack.length > 0) {
    const n = stack.pop();
    if (!n.hasError && !n.isMissing) continue;
    if (n.type === 'ERROR' || n.isMissing) {
      out.push(n);
      if (n.isMissing) continue;
    }
    for (let i = n.childCount - 1; i >= 0; i--) stack.push(n.child(i));
  }
  return out;
}

const parser = new Parser();
parser.setLanguage(PowerShell);
const dirs = process.argv.length > 2 ? process.argv.slice(2) : [join(root, 'scripts')];
let files = 0;
let failed = 0;
for (const dir of dirs) {
  for (const file of psFiles(resolve(dir))) {
    files++;
    // Byte order marks are legal in PowerShell files and not in the grammar.
    const src = readFileSync(file, 'utf8').replace(/^\uFEFF/, '');
    // The default input buffer of the binding is small; give it the file.
    const tree = parser.parse(src, null, { bufferSize: Math.max(src.length * 2, 32 * 1024) });
    const bad = problems(tree);
    if (bad.length === 0 && !tree.rootNode.hasError) continue;
    failed++;
    const name = relative(process.cwd(), file) || file;
    if (bad.length === 0) console.error(`${name}: syntax error`);
    for (const n of bad) {
      const what = n.isMissing ? `missing ${n.type}` : `syntax error near ${JSON.stringify(n.text.slice(0, 40))}`;
      console.error(`${name}:${n.startPosition.row + 1}:${n.startPosition.column + 1}: ${what}`);
    }
  }
}
if (failed > 0) {
  console.error(`check-powershell: ${failed} of ${files} PowerShell files do not parse`);
  process.exit(1);
}
console.log(`check-powershell: ${files} PowerShell files parse`);

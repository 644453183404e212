// check-powershell-contract.mjs checks, over the tree-sitter parse of the
// ContainerImage module (scripts/ContainerImage, or the folder given), the
// contract that PackageManagement and the 2016 cmdlets set and that no test
// here can run:
//
//   overrides   the provider, and the shared module it calls
//               (ContainerProviderApi.psm1), call Write-Warning,
//               Write-Verbose, Write-Debug and Write-Progress only with the
//               parameters of the functions that PackageManagement puts in
//               their place, and never its Write-Error, which takes no
//               ErrorRecord and writes a warning: errors go to the error
//               stream through the cmdlet, by its module-qualified name;
//   mandatory   every mandatory parameter of New-SoftwareIdentity,
//               New-PackageSource, New-DynamicOption and New-Feature is given
//               a value shown to be non-empty at each call;
//   options     every option the provider reads is a dynamic option that
//               Get-DynamicOptions declares in a category of a cmdlet that
//               calls the function, or a static parameter of such a cmdlet,
//               and no declared option has the name of a static parameter;
//   routes      every route of the table (in ContainerProviderApi.psm1) is
//               used by some function, and every route used is in the table;
//   credentials the request's -Credential (the package source's, the
//               registry's) is read only by Add-PackageSource, through
//               Get-RequestCredential, and never given to the shared module's
//               calls, which take providerd's token from the environment or
//               the token file;
//   cancel      an install can be canceled: the provider's Install-Package
//               follows its job with Wait-ContainerProviderJob -CancelWhen
//               that reads $request.IsCanceled (Test-RequestCanceled),
//               Install-ContainerImage cancels on Ctrl+C (-CancelOnStop),
//               and Wait-ContainerProviderJob reads the job's event stream
//               (GetJobEvents) and calls CancelJob;
//   strict      no function of the three modules reads a variable before
//               assigning it, which Set-StrictMode -Version 2.0 makes an
//               error (a read inside a script block counts once the
//               function assigns the variable anywhere: the block runs
//               later, through dynamic scope);
//   pipeline    Install-, Save- and Remove-ContainerImage take -Name
//               ValueFromPipelineByPropertyName, a string piped binds to
//               -Name, and Save-ContainerImage's -Path keeps 0.5's
//               -Destination alias.
//
// The PackageManagement facts below are OneGet's (github.com/OneGet/oneget):
// the overrides and the mandatory parameters are those of
// src/Microsoft.PowerShell.PackageManagement/PackageProviderFunctions.psm1,
// which PackageManagement loads into the provider's runspace first; the
// categories and static parameters of each cmdlet are those of
// src/Microsoft.PowerShell.PackageManagement/Cmdlets/*.cs; $request.Options
// holds the set dynamic options and every bound parameter (CmdletBase.cs
// OptionKeys), and a dynamic option named as a static parameter is never
// added (CmdletWithProvider.cs ActualGenerateDynamicParameters).
//
// It prints one line per failure, "FAIL check: file:line: what", then one
// summary line per check, and exits 1 when any check fails.
// Usage: node scripts/check-powershell-contract.mjs [moduleDir]
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
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
    console.error(`check-powershell-contract: ${name} is not installed in ${npmDir}; run scripts/install-tools.sh powershell-grammar`);
    process.exit(2);
  }
  const mod = await import(pathToFileURL(path).href);
  return mod.default ?? mod;
}

const Parser = await load('tree-sitter');
const PowerShell = await load('tree-sitter-powershell');

// The functions of PackageProviderFunctions.psm1 that replace the cmdlets of
// the same name in the provider's runspace, with their parameters; a
// function without [CmdletBinding()] binds its parameters by position too.
const overrides = {
  'write-error': ['Message', 'Category', 'ErrorId', 'TargetObject'],
  'write-warning': ['message', 'args'],
  'write-verbose': ['message', 'args'],
  'write-debug': ['message', 'args'],
  'write-progress': ['Activity', 'Status', 'Id', 'PercentComplete', 'SecondsRemaining', 'CurrentOperation', 'ParentID', 'Completed', 'SourceID', 'args'],
};

// The mandatory parameters of PackageProviderFunctions.psm1's constructors.
const mandatory = {
  'new-softwareidentity': ['fastPackageReference', 'name', 'version', 'versionScheme', 'source'],
  'new-packagesource': ['name', 'location', 'trusted', 'registered'],
  'new-dynamicoption': ['category', 'name', 'expectedType', 'isRequired'],
  'new-feature': ['name'],
};

// The OptionCategory and OptionType values (Enums.cs of the PowerShell
// meta provider).
const optionCategories = ['Package', 'Provider', 'Source', 'Install'];
const optionTypes = ['String', 'StringArray', 'Int', 'Switch', 'Folder', 'File', 'Path', 'Uri', 'SecureString'];

// Each PackageManagement cmdlet: the option categories it asks the provider
// for and its static parameters (CmdletBase's Force and ForceBootstrap
// included).
const base = ['Force', 'ForceBootstrap'];
const search = [...base, 'Name', 'RequiredVersion', 'MinimumVersion', 'MaximumVersion', 'AllVersions'];
const cmdlets = {
  'Find-Package': { categories: ['Provider', 'Source', 'Package'], params: [...search, 'Source', 'Credential', 'Proxy', 'ProxyCredential', 'IncludeDependencies'] },
  'Install-Package': { categories: ['Provider', 'Source', 'Package', 'Install'], params: [...search, 'Source', 'Credential', 'Proxy', 'ProxyCredential', 'InputObject'] },
  'Save-Package': { categories: ['Provider', 'Source', 'Package'], params: [...search, 'Source', 'Credential', 'Proxy', 'ProxyCredential', 'Path', 'LiteralPath', 'InputObject'] },
  'Get-Package': { categories: ['Provider', 'Install'], params: search },
  'Uninstall-Package': { categories: ['Provider', 'Install'], params: [...search, 'InputObject'] },
  'Register-PackageSource': { categories: ['Provider', 'Source'], params: [...base, 'Proxy', 'ProxyCredential', 'Name', 'Location', 'Credential', 'Trusted'] },
  'Set-PackageSource': { categories: ['Provider', 'Source'], params: [...base, 'InputObject', 'Proxy', 'ProxyCredential', 'Credential', 'Name', 'Location', 'NewLocation', 'NewName', 'Trusted'] },
  'Unregister-PackageSource': { categories: ['Provider', 'Source'], params: [...base, 'InputObject', 'Credential', 'Source', 'Location'] },
  'Get-PackageSource': { categories: ['Provider', 'Source'], params: [...base, 'Name', 'Location'] },
};

// The cmdlets whose work calls each function of the provider contract.
const callers = {
  'Find-Package': ['Find-Package', 'Install-Package', 'Save-Package'],
  'Install-Package': ['Install-Package'],
  'Download-Package': ['Save-Package'],
  'Get-InstalledPackage': ['Get-Package', 'Uninstall-Package', 'Install-Package'],
  'Uninstall-Package': ['Uninstall-Package'],
  'Resolve-PackageSource': ['Get-PackageSource', 'Register-PackageSource', 'Set-PackageSource', 'Unregister-PackageSource', 'Find-Package', 'Install-Package', 'Save-Package'],
  'Add-PackageSource': ['Register-PackageSource', 'Set-PackageSource'],
  'Remove-PackageSource': ['Unregister-PackageSource', 'Set-PackageSource'],
};

// The provider's helpers that read the option their -Name (or first
// argument) names; inside them the name is a variable.
const optionReaders = ['get-requestoption', 'get-requestlist', 'test-requestswitch'];


// The cmdlets whose -Name must bind from the pipeline, as in ContainerProvider
// 0.6's ContainerImage.psm1.
const pipelineCmdlets = ['Install-ContainerImage', 'Save-ContainerImage', 'Remove-ContainerImage'];

const moduleDir = resolve(process.argv[2] || join(root, 'scripts', 'ContainerImage'));
const parser = new Parser();
parser.setLanguage(PowerShell);

function parse(name) {
  const src = readFileSync(join(moduleDir, name), 'utf8').replace(/^\uFEFF/, '');
  const tree = parser.parse(src, null, { bufferSize: Math.max(src.length * 2, 32 * 1024) });
  if (tree.rootNode.hasError) {
    console.error(`check-powershell-contract: ${name} does not parse; run scripts/check-powershell.mjs`);
    process.exit(2);
  }
  return { name, tree };
}

const moduleFile = parse('ContainerImage.psm1');
const providerFile = parse('ContainerImageProvider.psm1');
// The shared module; a module from before it (one ContainerImage.psm1 with
// the route table) is checked with that file in its place.
const apiFile = existsSync(join(moduleDir, 'ContainerProviderApi.psm1')) ? parse('ContainerProviderApi.psm1') : moduleFile;

const failures = {};
const checks = ['overrides', 'mandatory', 'options', 'routes', 'credentials', 'cancel', 'strict', 'pipeline'];
for (const c of checks) failures[c] = [];
function fail(check, file, node, what) {
  failures[check].push(`FAIL ${check}: ${file.name}:${node.startPosition.row + 1}: ${what}`);
}

function* walk(node) {
  const stack = [node];
  while (stack.length > 0) {
    const n = stack.pop();
    yield n;
    for (let i = n.namedChildCount - 1; i >= 0; i--) stack.push(n.namedChild(i));
  }
}

function ofType(node, type) {
  return [...walk(node)].filter((n) => n.type === type);
}

// The grammar wraps every expression in a chain of precedence levels of one
// child each; unwrap returns the innermost node of such a chain.
const wrappers = new Set([
  'pipeline', 'pipeline_chain', 'logical_expression', 'bitwise_expression', 'comparison_expression',
  'additive_expression', 'multiplicative_expression', 'format_expression', 'range_expression',
  'array_literal_expression', 'unary_expression', 'string_literal', 'parenthesized_expression', 'key_expression',
]);
function unwrap(node) {
  let n = node;
  while (n && wrappers.has(n.type) && n.namedChildCount === 1) n = n.namedChild(0);
  return n;
}

const lower = (s) => s.toLowerCase();

// functions maps each function of a file, by lower-case name, to its node.
function functions(file) {
  const out = new Map();
  for (const f of ofType(file.tree.rootNode, 'function_statement')) {
    const name = f.childForFieldName?.('name') ?? f.namedChildren.find((c) => c.type === 'function_name');
    f.displayName = name.text;
    out.set(lower(name.text), f);
  }
  return out;
}

// commands lists the commands under node: name and arguments, each a
// parameter name (without '-', or null when positional), its value node
// (null for a switch) and whether it is a splat.
function commands(node) {
  const out = [];
  for (const c of ofType(node, 'command')) {
    const nameNode = c.namedChildren.find((x) => x.type === 'command_name');
    if (!nameNode) continue;
    const elems = c.namedChildren.find((x) => x.type === 'command_elements');
    const items = elems ? elems.namedChildren.filter((x) => x.type !== 'command_argument_sep') : [];
    const args = [];
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      if (it.type === 'command_parameter') {
        const next = items[i + 1];
        const value = next && next.type !== 'command_parameter' ? next : null;
        if (value) i++;
        args.push({ param: it.text.replace(/^-/, '').replace(/:$/, ''), value, node: it });
        continue;
      }
      const u = unwrap(it);
      if (u && u.type === 'variable' && u.text.startsWith('@')) {
        args.push({ splat: u.text.slice(1), node: it });
        continue;
      }
      args.push({ param: null, value: it, node: it });
    }
    out.push({ name: nameNode.text, node: c, args });
  }
  return out;
}

// The string value of a literal node, or null when it is not a literal.
function literalText(node) {
  const u = unwrap(node);
  if (!u) return null;
  if (u.type === 'verbatim_string_characters') return u.text.slice(1, -1);
  if (u.type === 'expandable_string_literal' && u.namedChildCount === 0) return u.text.slice(1, -1);
  if (u.type === 'generic_token' || u.type === 'simple_name') return u.text;
  return null;
}

// assignments lists the assignment expressions under node whose left side
// is exactly target (a variable, or a member access such as $ref.Name).
function assignments(node, target) {
  const out = [];
  for (const a of ofType(node, 'assignment_expression')) {
    const left = unwrap(a.namedChildren.find((c) => c.type === 'left_assignment_expression')?.namedChild(0));
    if (!left || lower(left.text) !== lower(target)) continue;
    const right = a.namedChildren[a.namedChildren.length - 1];
    out.push({ node: a, right });
  }
  return out;
}

// params returns the parameters of a function: name, type, attributes.
function params(fn) {
  const out = [];
  const block = ofType(fn, 'param_block')[0];
  if (!block) return out;
  const list = block.namedChildren.find((c) => c.type === 'parameter_list');
  for (const p of list ? list.namedChildren.filter((c) => c.type === 'script_parameter') : []) {
    const v = p.namedChildren.find((c) => c.type === 'variable');
    const attrs = [];
    let type = null;
    for (const a of ofType(p, 'attribute')) {
      const tl = a.namedChildren.find((c) => c.type === 'type_literal');
      if (tl) {
        type = tl.text.slice(1, -1);
        continue;
      }
      const an = a.namedChildren.find((c) => c.type === 'attribute_name');
      const named = {};
      const positional = [];
      for (const arg of ofType(a, 'attribute_argument')) {
        const key = arg.namedChildren.find((c) => c.type === 'simple_name');
        const val = arg.namedChildren[arg.namedChildren.length - 1];
        if (key && val !== key) named[lower(key.text)] = unwrap(val).text;
        else positional.push(literalText(val) ?? arg.text);
      }
      attrs.push({ name: lower(an.text), named, positional, node: a });
    }
    out.push({ name: v.text.slice(1), type, attrs, node: p });
  }
  return out;
}

// Checks of the provider's calls of the functions PackageManagement replaces,
// and of the shared module's, which run in the provider's runspace too.
function checkOverrides() {
  for (const file of [providerFile, apiFile]) checkOverridesIn(file);
}

function checkOverridesIn(providerFile) {
  for (const cmd of commands(providerFile.tree.rootNode)) {
    const allowed = overrides[lower(cmd.name)];
    if (!allowed) continue;
    if (lower(cmd.name) === 'write-error') {
      fail('overrides', providerFile, cmd.node, `${cmd.name}: PackageManagement's Write-Error writes a warning, not an error; write the ErrorRecord to the error stream (Microsoft.PowerShell.Utility\\Write-Error -ErrorRecord, in Write-ContainerImageError)`);
    }
    let positional = 0;
    for (const a of cmd.args) {
      if (a.splat) {
        fail('overrides', providerFile, a.node, `${cmd.name} @${a.splat}: PackageManagement's ${cmd.name} takes only ${allowed.map((p) => '-' + p).join(', ')}; splat them explicitly`);
        continue;
      }
      if (a.param === null) {
        positional++;
        continue;
      }
      if (!allowed.some((p) => lower(p) === lower(a.param))) {
        fail('overrides', providerFile, a.node, `${cmd.name} -${a.param}: PackageManagement's ${cmd.name} has no such parameter (it takes ${allowed.map((p) => '-' + p).join(', ')})`);
      }
    }
    if (positional > allowed.length) {
      fail('overrides', providerFile, cmd.node, `${cmd.name} has ${positional} positional arguments`);
    }
  }
}

// The emptiness tests that a guard may use on a value: IsNullOrEmpty,
// IsNullOrWhiteSpace, -not and !.
function testsEmpty(cond, key) {
  const k = lower(key.replace(/\s+/g, ''));
  const text = lower(cond.text.replace(/\s+/g, ''));
  const bare = (s) => s.replace(/^\[string\]/, '');
  for (const m of text.matchAll(/isnullor(?:empty|whitespace)\(([^()]*(?:\([^()]*\))?[^()]*)\)/g)) {
    if (bare(m[1]) === k) return true;
  }
  for (const m of text.matchAll(/(?:-not|!)\(?([$\w.:'\[\]]+)\)?/g)) {
    if (bare(m[1]) === k) return true;
  }
  return false;
}

// guarded says whether an if statement before node, in fn, tests key for
// emptiness and then leaves (throw, return, continue, break) or assigns key
// a non-empty value.
function guarded(fn, node, key, depth) {
  for (const s of ofType(fn, 'if_statement')) {
    if (s.startIndex >= node.startIndex) continue;
    const cond = s.namedChildren.find((c) => c.type === 'pipeline');
    const block = s.namedChildren.find((c) => c.type === 'statement_block');
    if (!cond || !block || !testsEmpty(cond, key)) continue;
    const leaves = ofType(block, 'flow_control_statement').some((f) => /^(throw|return|continue|break)\b/i.test(f.text));
    const fills = assignments(block, key).some((a) => nonEmpty(fn, a.right, depth + 1).ok);
    if (leaves || fills) return true;
  }
  return false;
}

// nonEmpty says whether the value node, in function fn, is shown to be
// non-empty: a non-empty literal, $true or $false, a number, a format string
// with text of its own, a parameter with [ValidateNotNullOrEmpty()] or of a
// value type, a value guarded by an emptiness test, or a variable every
// assignment of which is non-empty.
function nonEmpty(fn, value, depth = 0) {
  if (!value) return { ok: false, why: 'no value' };
  if (depth > 4) return { ok: false, why: `${value.text} is not shown to be non-empty` };
  const u = unwrap(value);
  const lit = literalText(u);
  if (lit !== null) return lit.trim() === '' ? { ok: false, why: `the value ${value.text} is empty` } : { ok: true };
  if (u.type === 'expandable_string_literal') {
    const own = u.text.slice(1, -1).replace(/\$\([^)]*\)|\$[\w:]+/g, '').trim();
    return own ? { ok: true } : { ok: false, why: `${u.text} is only variables` };
  }
  if (u.type === 'integer_literal' || u.type === 'decimal_integer_literal') return { ok: true };
  if (u.type === 'variable' && /^\$(true|false)$/i.test(u.text)) return { ok: true };
  if (u.type === 'variable' && /^\$null$/i.test(u.text)) return { ok: false, why: 'the value is $null' };
  // A cast: [bool] is $true or $false, never empty; [string] is as empty
  // as what it casts.
  const cast = u.type === 'expression_with_unary_operator' && u.namedChild(0)?.type === 'cast_expression' ? u.namedChild(0) : null;
  const castType = cast && cast.namedChild(0)?.type === 'type_literal' ? lower(cast.namedChild(0).text) : null;
  if (castType === '[bool]') return { ok: true };
  if (u.type === 'format_expression') {
    const left = literalText(u.namedChild(0));
    if (left !== null && left.replace(/\{\d+\}/g, '').trim() !== '') return { ok: true };
    return { ok: false, why: `${u.text} may format to an empty string` };
  }
  let key = u.text;
  if (castType === '[string]') {
    key = u.text.replace(/^\[string\]\s*/i, '');
  }
  if (!/^\$[\w:]+(\.\w+)*$/.test(key)) return { ok: false, why: `${value.text} is not shown to be non-empty` };
  if (guarded(fn, value, key, depth)) return { ok: true };
  if (!key.includes('.')) {
    const p = params(fn).find((x) => lower('$' + x.name) === lower(key));
    if (p) {
      if (p.attrs.some((a) => a.name === 'validatenotnullorempty')) return { ok: true };
      if (p.type && !/^(string|object|psobject|hashtable|string\[\]|object\[\])$/i.test(p.type)) return { ok: true };
      return { ok: false, why: `the parameter ${key} may be empty: give it [ValidateNotNullOrEmpty()] or test it` };
    }
    const as = assignments(fn, key).filter((a) => a.node.startIndex < value.startIndex);
    if (as.length > 0 && as.every((a) => nonEmpty(fn, a.right, depth + 1).ok)) return { ok: true };
  }
  return { ok: false, why: `${key} is not shown to be non-empty: test it with [string]::IsNullOrEmpty before the call` };
}

// splatted returns the keys and values of the hashtable that @name splats
// in fn: the literal assigned to $name, with the keys set later.
function splatted(fn, name, before) {
  const out = new Map();
  for (const a of assignments(fn, '$' + name)) {
    if (a.node.startIndex > before) continue;
    for (const h of ofType(a.right, 'hash_literal_expression')) {
      const body = h.namedChildren.find((c) => c.type === 'hash_literal_body');
      for (const e of body ? body.namedChildren.filter((c) => c.type === 'hash_entry') : []) {
        const k = e.namedChildren.find((c) => c.type === 'key_expression');
        out.set(lower(literalText(k) ?? k.text), e.namedChildren[e.namedChildren.length - 1]);
      }
      break;
    }
  }
  for (const a of ofType(fn, 'assignment_expression')) {
    if (a.startIndex > before) continue;
    const left = unwrap(a.namedChildren.find((c) => c.type === 'left_assignment_expression')?.namedChild(0));
    if (!left) continue;
    const m = left.text.match(/^\$(\w+)(?:\['(\w+)'\]|\["(\w+)"\]|\.(\w+))$/);
    if (m && lower(m[1]) === lower(name)) out.set(lower(m[2] || m[3] || m[4]), a.namedChildren[a.namedChildren.length - 1]);
  }
  return out;
}

function checkMandatory() {
  for (const fn of functions(providerFile).values()) {
    const fname = fn.displayName;
    for (const cmd of commands(fn)) {
      const required = mandatory[lower(cmd.name)];
      if (!required) continue;
      const given = new Map();
      for (const a of cmd.args) {
        if (a.splat) {
          for (const [k, v] of splatted(fn, a.splat, cmd.node.startIndex)) given.set(k, v);
        } else if (a.param !== null) {
          given.set(lower(a.param), a.value);
        }
      }
      for (const p of required) {
        if (!given.has(lower(p))) {
          fail('mandatory', providerFile, cmd.node, `${fname}: ${cmd.name} without its mandatory -${p}`);
          continue;
        }
        const r = nonEmpty(fn, given.get(lower(p)));
        if (!r.ok) fail('mandatory', providerFile, cmd.node, `${fname}: ${cmd.name} -${p}: ${r.why}`);
      }
      if (lower(cmd.name) === 'new-dynamicoption') {
        const t = literalText(given.get('expectedtype'));
        if (t !== null && !optionTypes.some((x) => lower(x) === lower(t))) fail('mandatory', providerFile, cmd.node, `${fname}: -ExpectedType ${t} is no OptionType`);
      }
    }
  }
}

// declaredOptions maps each option that Get-DynamicOptions declares to the
// categories it is declared in.
function declaredOptions(fns) {
  const out = new Map();
  const fn = fns.get('get-dynamicoptions');
  if (!fn) {
    fail('options', providerFile, providerFile.tree.rootNode, 'the provider has no Get-DynamicOptions');
    return out;
  }
  for (const clause of ofType(fn, 'switch_clause')) {
    const cond = clause.namedChildren.find((c) => c.type === 'switch_clause_condition');
    const category = optionCategories.find((c) => lower(c) === lower(literalText(cond) ?? cond.text));
    if (!category) {
      fail('options', providerFile, clause, `Get-DynamicOptions: ${cond.text} is no OptionCategory`);
      continue;
    }
    for (const cmd of commands(clause)) {
      if (lower(cmd.name) !== 'new-dynamicoption') continue;
      const nameArg = cmd.args.find((a) => a.param && lower(a.param) === 'name');
      const name = nameArg && literalText(nameArg.value);
      if (!name) {
        fail('options', providerFile, cmd.node, 'Get-DynamicOptions: an option whose -Name is no literal');
        continue;
      }
      if (!out.has(name)) out.set(name, []);
      out.get(name).push({ category, node: cmd.node });
    }
  }
  return out;
}

// optionReads lists the options that function fn reads itself: the helper
// calls with a literal name and $request.Options lookups.
function optionReads(fname, fn) {
  const out = [];
  for (const cmd of commands(fn)) {
    if (!optionReaders.includes(lower(cmd.name))) continue;
    const arg = cmd.args.find((a) => a.param === null || lower(a.param) === 'name');
    const name = arg && literalText(arg.value);
    if (name) out.push({ name, node: cmd.node });
    else if (!optionReaders.includes(lower(fname))) fail('options', providerFile, cmd.node, `${fname}: ${cmd.name} reads an option whose name is no literal`);
  }
  for (const n of walk(fn)) {
    if (n.type !== 'element_access' && n.type !== 'member_access' && n.type !== 'invokation_expression') continue;
    const m = n.text.match(/^\$request\.Options(?:\[\s*['"](\w+)['"]\s*\]|\.ContainsKey\(\s*['"](\w+)['"]\s*\)|\.(\w+))$/i);
    if (m && lower(m[3] || '') !== 'containskey') out.push({ name: m[1] || m[2] || m[3], node: n });
  }
  return out;
}

// The provider functions that fn calls, by lower-case name.
function calls(fn, fns) {
  return commands(fn).map((c) => lower(c.name)).filter((n) => fns.has(n));
}

function checkOptions() {
  const fns = functions(providerFile);
  const declared = declaredOptions(fns);
  // A declared option named as a static parameter of a cmdlet that asks for
  // its category never becomes a parameter.
  for (const [name, decls] of declared) {
    for (const d of decls) {
      for (const [cmdlet, c] of Object.entries(cmdlets)) {
        if (c.categories.includes(d.category) && c.params.some((p) => lower(p) === lower(name))) {
          fail('options', providerFile, d.node, `Get-DynamicOptions: the ${d.category} option ${name} has the name of ${cmdlet}'s static -${name}, so PackageManagement drops it`);
        }
      }
    }
  }
  for (const [entry, users] of Object.entries(callers)) {
    const fn = fns.get(lower(entry));
    if (!fn) continue;
    // The options read by the function and by the helpers it calls.
    const seen = new Set([lower(entry)]);
    const queue = [lower(entry)];
    const reads = [];
    for (let i = 0; i < queue.length && i < 100; i++) {
      const f = fns.get(queue[i]);
      reads.push(...optionReads(f.displayName, f));
      for (const c of calls(f, fns)) {
        if (!seen.has(c)) {
          seen.add(c);
          queue.push(c);
        }
      }
    }
    for (const r of reads) {
      const ok = users.some((u) => cmdlets[u].params.some((p) => lower(p) === lower(r.name)) ||
        (declared.get(r.name) || []).some((d) => cmdlets[u].categories.includes(d.category)));
      if (!ok) {
        const where = (declared.get(r.name) || []).map((d) => d.category);
        fail('options', providerFile, r.node, `${entry} reads option ${r.name}, which is neither a static parameter nor a declared option of ${users.join(', ')}` +
          (where.length ? ` (it is declared in ${where.join(', ')})` : ' (Get-DynamicOptions never declares it)'));
      }
    }
  }
}

function checkRoutes() {
  let table = null;
  for (const a of ofType(apiFile.tree.rootNode, 'assignment_expression')) {
    const left = unwrap(a.namedChildren.find((c) => c.type === 'left_assignment_expression')?.namedChild(0));
    if (left && lower(left.text) === '$script:routes') table = a;
  }
  if (!table) {
    fail('routes', apiFile, apiFile.tree.rootNode, 'ContainerProviderApi.psm1 has no $script:Routes table');
    return;
  }
  const routes = new Map();
  const h = ofType(table, 'hash_literal_expression')[0];
  for (const e of h.namedChildren.find((c) => c.type === 'hash_literal_body').namedChildren.filter((c) => c.type === 'hash_entry')) {
    const k = e.namedChildren.find((c) => c.type === 'key_expression');
    routes.set(literalText(k) ?? k.text, e);
  }
  const used = new Map();
  for (const file of [moduleFile, providerFile, apiFile]) {
    for (const fn of functions(file).values()) {
      const fname = fn.displayName;
      for (const cmd of commands(fn)) {
        for (const a of cmd.args) {
          if (a.param && lower(a.param) === 'route') {
            const r = literalText(a.value);
            if (r) used.set(r, [...(used.get(r) || []), { file, fname, node: a.node }]);
          }
        }
      }
      for (const e of ofType(fn, 'hash_entry')) {
        const k = e.namedChildren.find((c) => c.type === 'key_expression');
        if (lower(literalText(k) ?? '') !== 'route') continue;
        const r = literalText(e.namedChildren[e.namedChildren.length - 1]);
        if (r) used.set(r, [...(used.get(r) || []), { file, fname, node: e }]);
      }
    }
  }
  for (const [name, node] of routes) {
    if (!used.has(name)) {
      fail('routes', apiFile, node, `route ${name} is used by no function`);
    }
  }
  for (const [name, uses] of used) {
    if (!routes.has(name)) {
      for (const u of uses) fail('routes', u.file, u.node, `${u.fname} calls route ${name}, which the table does not declare`);
    }
  }
}

// The functions of the shared module that call providerd, and the
// provider's wrapper of Invoke-ContainerProviderApi: none may be given a
// -Credential.
const tokenCommands = ['invoke-containerproviderapi', 'wait-containerproviderjob', 'invoke-containerimageapi'];

function checkCredentials() {
  for (const fn of functions(providerFile).values()) {
    const fname = fn.displayName;
    for (const cmd of commands(fn)) {
      if (tokenCommands.includes(lower(cmd.name)) && cmd.args.some((a) => a.param && lower(a.param) === 'credential')) {
        fail('credentials', providerFile, cmd.node, `${fname}: ${cmd.name} -Credential would send a credential to providerd`);
      }
      if (lower(cmd.name) === 'get-requestcredential' && lower(fname) !== 'add-packagesource') {
        fail('credentials', providerFile, cmd.node, `${fname} reads the request's credential, the registry's: only Add-PackageSource may`);
      }
    }
    for (const e of ofType(fn, 'hash_entry')) {
      const k = e.namedChildren.find((c) => c.type === 'key_expression');
      if (lower(literalText(k) ?? '') === 'credential') fail('credentials', providerFile, e, `${fname}: a Credential argument of the shared module's calls would send the request's credential to providerd (its token comes from the environment or the token file)`);
    }
    for (const a of ofType(fn, 'assignment_expression')) {
      const left = unwrap(a.namedChildren.find((c) => c.type === 'left_assignment_expression')?.namedChild(0));
      if (left && /\[\s*['"]Credential['"]\s*\]$/i.test(left.text)) fail('credentials', providerFile, a, `${fname}: ${left.text} is set: the shared module's calls take no credential, and the request's never goes to providerd`);
    }
    for (const n of walk(fn)) {
      if (n.type === 'member_access' && /^\$request\.Credential$/i.test(n.text) && lower(fname) !== 'get-requestcredential') {
        fail('credentials', providerFile, n, `${fname} reads $request.Credential: only Get-RequestCredential may`);
      }
    }
  }
}

// callsWith says whether function fname of file calls command with a
// parameter param whose value's text matches re (any value when re is null).
function callsWith(file, fname, command, param, re) {
  const fn = functions(file).get(lower(fname));
  if (!fn) return false;
  return commands(fn).some((c) => lower(c.name) === lower(command) && c.args.some((a) => a.param && lower(a.param) === lower(param) && (!re || (a.value && re.test(a.value.text)))));
}

// usesRoute says whether function fname of file names route.
function usesRoute(file, fname, route) {
  const fn = functions(file).get(lower(fname));
  return !!fn && commands(fn).some((c) => c.args.some((a) => a.param && lower(a.param) === 'route' && literalText(a.value) === route));
}

function checkCancel() {
  if (!callsWith(providerFile, 'Install-Package', 'Wait-ContainerProviderJob', 'CancelWhen', /Test-RequestCanceled/i)) {
    fail('cancel', providerFile, providerFile.tree.rootNode, 'Install-Package does not follow its job with Wait-ContainerProviderJob -CancelWhen { Test-RequestCanceled }: a canceled request leaves the job running');
  }
  if (!callsWith(moduleFile, 'Install-ContainerImage', 'Complete-ImageJob', 'CancelOnStop', null)) {
    fail('cancel', moduleFile, moduleFile.tree.rootNode, 'Install-ContainerImage does not wait with -CancelOnStop: Ctrl+C leaves the job running');
  }
  for (const route of ['GetJobEvents', 'CancelJob']) {
    if (!usesRoute(apiFile, 'Wait-ContainerProviderJob', route)) {
      fail('cancel', apiFile, apiFile.tree.rootNode, `Wait-ContainerProviderJob does not call route ${route}`);
    }
  }
}

// The variables that PowerShell (or PackageManagement: $request) sets, which
// a function may read without assigning them.
const automaticVariables = new Set([
  '$_', '$psitem', '$args', '$input', '$this', '$pscmdlet', '$psboundparameters', '$myinvocation',
  '$true', '$false', '$null', '$error', '$home', '$psscriptroot', '$pscommandpath', '$psversiontable',
  '$executioncontext', '$iswindows', '$islinux', '$ismacos', '$confirmpreference', '$matches',
  '$lastexitcode', '$host', '$pwd', '$foreach', '$switch', '$request',
]);

function checkStrict() {
  for (const file of new Set([moduleFile, providerFile, apiFile])) {
    for (const fn of functions(file).values()) {
      const fname = fn.displayName;
      // Parameters, of the function and of its script blocks.
      const known = new Set(ofType(fn, 'script_parameter').map((p) => lower(p.namedChildren.find((c) => c.type === 'variable')?.text ?? '')));
      const lefts = ofType(fn, 'left_assignment_expression');
      // Where each variable is first set: after its assignment is
      // evaluated, or at its foreach.
      const defs = [];
      for (const a of ofType(fn, 'assignment_expression')) {
        const left = a.namedChildren.find((c) => c.type === 'left_assignment_expression');
        for (const v of left ? ofType(left, 'variable') : []) defs.push({ name: lower(v.text), at: a.endIndex });
      }
      for (const f of ofType(fn, 'foreach_statement')) {
        const v = f.namedChildren.find((c) => c.type === 'variable');
        if (v) defs.push({ name: lower(v.text), at: v.startIndex });
      }
      const blocks = ofType(fn, 'script_block_expression');
      for (const v of ofType(fn, 'variable')) {
        const name = lower(v.text);
        if (!/^\$\w+$/.test(v.text) || known.has(name) || automaticVariables.has(name)) continue;
        if (lefts.some((l) => l.startIndex <= v.startIndex && v.endIndex <= l.endIndex)) continue;
        const inBlock = blocks.some((b) => b.startIndex <= v.startIndex && v.endIndex <= b.endIndex);
        if (!defs.some((d) => d.name === name && (inBlock || d.at <= v.startIndex))) {
          fail('strict', file, v, `${fname} reads ${v.text} before assigning it: under Set-StrictMode -Version 2.0 that throws`);
        }
      }
    }
  }
}

// The parameter sets of a parameter's [Parameter()] attributes, each with
// its flags; a parameter without one is in every set.
function parameterSets(p) {
  const sets = p.attrs.filter((a) => a.name === 'parameter').map((a) => ({
    set: a.named.parametersetname ? a.named.parametersetname.replace(/^['"]|['"]$/g, '') : null,
    vfp: /^\$true$/i.test(a.named.valuefrompipeline || ''),
    vfpbpn: /^\$true$/i.test(a.named.valuefrompipelinebypropertyname || ''),
    node: a.node,
  }));
  return sets.length > 0 ? sets : [{ set: null, vfp: false, vfpbpn: false, node: p.node }];
}

// takesString says whether a string piped binds to a parameter of this
// type without coercion, the binder's first pass.
function takesString(type) {
  return !type || /^(string|string\[\]|object|object\[\]|psobject|psobject\[\]|System\.String|System\.Object)$/i.test(type);
}

function checkPipeline() {
  const fns = functions(moduleFile);
  for (const name of pipelineCmdlets) {
    const fn = fns.get(lower(name));
    if (!fn) {
      fail('pipeline', moduleFile, moduleFile.tree.rootNode, `the module has no ${name}`);
      continue;
    }
    const ps = params(fn);
    const nameParam = ps.find((p) => lower(p.name) === 'name');
    if (!nameParam) {
      fail('pipeline', moduleFile, fn, `${name} has no -Name`);
      continue;
    }
    if (!/^string\[\]$/i.test(nameParam.type || '')) fail('pipeline', moduleFile, nameParam.node, `${name} -Name is [${nameParam.type}], not [string[]]`);
    for (const s of parameterSets(nameParam)) {
      if (!s.vfpbpn) fail('pipeline', moduleFile, s.node, `${name} -Name${s.set ? ' (set ' + s.set + ')' : ''} is not ValueFromPipelineByPropertyName`);
    }
    // The binder tries the default parameter set first, and in it binds
    // the piped string to every ValueFromPipeline parameter that takes a
    // string without coercion; only when none does, the other sets.
    const cb = ofType(fn, 'attribute').find((a) => /^\[CmdletBinding/i.test(a.text));
    const dm = cb && cb.text.match(/DefaultParameterSetName\s*=\s*['"]([^'"]+)['"]/i);
    const defaultSet = dm ? dm[1] : null;
    const bindsIn = (pred) => ps.filter((p) => takesString(p.type) && parameterSets(p).some((s) => s.vfp && pred(s.set))).map((p) => p.name);
    let bound = defaultSet ? bindsIn((set) => set === null || set === defaultSet) : [];
    if (bound.length === 0) bound = bindsIn(() => true);
    if (bound.length !== 1 || lower(bound[0]) !== 'name') {
      fail('pipeline', moduleFile, fn, `${name}: 'NanoServer' | ${name} binds the string to ${bound.length ? bound.map((b) => '-' + b).join(', ') : 'no parameter'}, not to -Name`);
    }
  }
  const save = fns.get('save-containerimage');
  const path = save && params(save).find((p) => lower(p.name) === 'path');
  if (path && !path.attrs.some((a) => a.name === 'alias' && a.positional.some((x) => lower(x) === 'destination'))) {
    fail('pipeline', moduleFile, path.node, 'Save-ContainerImage -Path has not the -Destination alias of ContainerProvider 0.5');
  }
}

checkOverrides();
checkMandatory();
checkOptions();
checkRoutes();
checkCredentials();
checkCancel();
checkStrict();
checkPipeline();

let failed = 0;
for (const c of checks) {
  for (const line of failures[c]) console.log(line);
  failed += failures[c].length;
}
for (const c of checks) console.log(`${failures[c].length === 0 ? 'ok  ' : 'FAIL'} ${c}: ${failures[c].length} failure(s)`);
if (failed > 0) {
  console.log(`check-powershell-contract: ${failed} failure(s) in ${moduleDir}`);
  process.exit(1);
}
console.log(`check-powershell-contract: the module in ${moduleDir} keeps the contract`);

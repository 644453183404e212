package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// psContractChecker returns the node binary and the npm folder that
// scripts/check-powershell-contract.mjs needs, or skips the test.
func psContractChecker(t *testing.T) (node, npmDir string) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not installed: the PowerShell contract check needs it")
	}
	npmDir = os.Getenv("CP_NPM_DIR")
	if npmDir == "" {
		npmDir = filepath.Join(repoRoot(t), ".tools", "npm")
	}
	if _, err := os.Stat(filepath.Join(npmDir, "node_modules", "tree-sitter-powershell")); err != nil {
		t.Skipf("the tree-sitter PowerShell grammar is not in %s: run scripts/install-tools.sh powershell-grammar", npmDir)
	}
	return node, npmDir
}

// runContractCheck runs the contract check over the module in dir and
// returns its output and whether it passed.
func runContractCheck(t *testing.T, dir string) (string, bool) {
	t.Helper()
	node, npmDir := psContractChecker(t)
	root := repoRoot(t)
	cmd := exec.Command(node, "--no-deprecation", filepath.Join(root, "scripts", "check-powershell-contract.mjs"), dir)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CP_NPM_DIR="+npmDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("check-powershell-contract: %v\n%s", err, out)
		}
		return string(out), false
	}
	return string(out), true
}

// psMutation changes one file of a copy of the module.
type psMutation struct {
	file     string
	old, new string // old == "" appends new to the file
}

// mutatedModule copies scripts/ContainerImage to a temporary folder and
// applies the mutations; a mutation whose old text is not in the file
// fails the test, so that a change of the module cannot make it vacuous.
func mutatedModule(t *testing.T, muts ...psMutation) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(repoRoot(t), "scripts", "ContainerImage")
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range muts {
		path := filepath.Join(dir, m.file)
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		text := string(b)
		switch {
		case m.old == "":
			text += "\n" + m.new + "\n"
		case strings.Count(text, m.old) != 1:
			t.Fatalf("%s holds %q %d times, want once", m.file, m.old, strings.Count(text, m.old))
		default:
			text = strings.Replace(text, m.old, m.new, 1)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestPowerShellContract runs scripts/check-powershell-contract.mjs over the
// module: the provider and the shared module never call PackageManagement's
// Write-Error (a warning), their other overridden cmdlets take only the
// parameters of PackageManagement's replacements, every mandatory
// parameter of New-SoftwareIdentity, New-PackageSource, New-DynamicOption
// and New-Feature gets a non-empty value, every option read is declared in
// a category of a cmdlet that calls the function (or is a static
// parameter), every route of the table is used, the request's credential
// (the registry's) goes only to Add-PackageSource, an install can be
// canceled, no function reads a variable before setting it (strict mode),
// and Install-, Save- and Remove-ContainerImage bind a piped string and
// -Name by property name.
// Then it checks that the check catches each of these defects, put into a
// copy of the module.
func TestPowerShellContract(t *testing.T) {
	out, ok := runContractCheck(t, filepath.Join(repoRoot(t), "scripts", "ContainerImage"))
	if !ok {
		t.Fatalf("the module breaks the PackageManagement and cmdlet contract:\n%s", out)
	}
	t.Logf("%s", out)

	const provider, module, shared = "ContainerImageProvider.psm1", "ContainerImage.psm1", psAPIFile
	for _, c := range []struct {
		name  string
		muts  []psMutation
		wants []string
	}{
		{
			name:  "Write-Error -ErrorRecord",
			muts:  []psMutation{{file: provider, new: "function Test-Mutation {\n    try { Get-Item x } catch { Write-Error -ErrorRecord $_ }\n}"}},
			wants: []string{"FAIL overrides: " + provider, "Write-Error -ErrorRecord: PackageManagement's Write-Error has no such parameter"},
		},
		{
			name:  "PackageManagement's Write-Error",
			muts:  []psMutation{{file: provider, new: "function Test-Mutation {\n    Write-Error -Message 'x' -ErrorId 'ContainerProvider.Internal' -Category NotSpecified\n}"}},
			wants: []string{"FAIL overrides: " + provider, "Write-Error: PackageManagement's Write-Error writes a warning, not an error"},
		},
		{
			name:  "Write-Error -ErrorRecord in the shared module",
			muts:  []psMutation{{file: shared, new: "function Test-Mutation {\n    try { Get-Item x } catch { Write-Error -ErrorRecord $_ }\n}"}},
			wants: []string{"FAIL overrides: " + shared, "Write-Error -ErrorRecord: PackageManagement's Write-Error has no such parameter"},
		},
		{
			name:  "Write-Warning splat",
			muts:  []psMutation{{file: provider, new: "function Test-Mutation {\n    $w = @{ Message = 'x' }\n    Write-Warning @w\n}"}},
			wants: []string{"FAIL overrides: ", "Write-Warning @w"},
		},
		{
			name:  "empty Location",
			muts:  []psMutation{{file: provider, new: "function Test-Mutation {\n    New-PackageSource -Name 'x' -Location '' -Trusted $false -Registered $false -Valid $true\n}"}},
			wants: []string{"FAIL mandatory: ", "Test-Mutation: New-PackageSource -location: the value '' is empty"},
		},
		{
			name: "missing and unchecked values",
			muts: []psMutation{{file: provider, new: "function Test-Mutation {\n    param([string]$n)\n    $v = [string]$n.version\n    $id = @{ Name = $n; Version = $v; VersionScheme = 'MultiPartNumeric'; Source = 'x' }\n    New-SoftwareIdentity @id\n}"}},
			wants: []string{
				"Test-Mutation: New-SoftwareIdentity without its mandatory -fastPackageReference",
				"Test-Mutation: New-SoftwareIdentity -name: the parameter $n may be empty",
				"Test-Mutation: New-SoftwareIdentity -version: $v is not shown to be non-empty",
			},
		},
		{
			name:  "undeclared option",
			muts:  []psMutation{{file: provider, old: "            Write-Output -InputObject (New-DynamicOption -Category $Category -Name 'Insecure' -ExpectedType Switch -IsRequired $false)\n", new: ""}},
			wants: []string{"FAIL options: ", "Add-PackageSource reads option Insecure", "Get-DynamicOptions never declares it"},
		},
		{
			name:  "option of the wrong category",
			muts:  []psMutation{{file: provider, new: "function Add-PackageSource {\n    $x = Test-RequestSwitch 'NoDependencies'\n}"}},
			wants: []string{"Add-PackageSource reads option NoDependencies", "(it is declared in Install)"},
		},
		{
			name:  "option named as a static parameter",
			muts:  []psMutation{{file: provider, old: "-Name 'Mirror' -ExpectedType StringArray", new: "-Name 'Location' -ExpectedType StringArray"}},
			wants: []string{"the Source option Location has the name of Register-PackageSource's static -Location"},
		},
		{
			name:  "unused route",
			muts:  []psMutation{{file: shared, old: "$script:Routes = [ordered]@{\n", new: "$script:Routes = [ordered]@{\n    Unused          = @{ Method = 'GET'; Path = '/v1/unused'; Query = @() }\n"}},
			wants: []string{"FAIL routes: " + shared, "route Unused is used by no function"},
		},
		{
			name:  "undeclared route",
			muts:  []psMutation{{file: provider, new: "function Test-Mutation {\n    Invoke-ContainerImageApi @{ Route = 'NoSuchRoute' }\n}"}},
			wants: []string{"Test-Mutation calls route NoSuchRoute, which the table does not declare"},
		},
		{
			name:  "Name not by property name",
			muts:  []psMutation{{file: module, old: "[Parameter(Mandatory = $true, Position = 0, ValueFromPipeline = $true, ValueFromPipelineByPropertyName = $true, ParameterSetName = 'Name')]\n        [ValidateNotNullOrEmpty()]\n        [string[]]$Name,\n        [Parameter(Mandatory = $true, ValueFromPipeline = $true, ParameterSetName = 'InputObject')]\n        [object[]]$InputObject,", new: "[Parameter(Mandatory = $true, Position = 0, ParameterSetName = 'Name')]\n        [ValidateNotNullOrEmpty()]\n        [string[]]$Name,\n        [Parameter(Mandatory = $true, ValueFromPipeline = $true, ParameterSetName = 'InputObject')]\n        [object[]]$InputObject,"}},
			wants: []string{"Install-ContainerImage -Name (set Name) is not ValueFromPipelineByPropertyName", "'NanoServer' | Install-ContainerImage binds the string to -InputObject, not to -Name"},
		},
		{
			name:  "provider without cancellation",
			muts:  []psMutation{{file: provider, old: " -CancelWhen { Test-RequestCanceled }", new: ""}},
			wants: []string{"FAIL cancel: " + provider, "Install-Package does not follow its job with Wait-ContainerProviderJob -CancelWhen"},
		},
		{
			name:  "cmdlet without cancellation",
			muts:  []psMutation{{file: module, old: " -CancelOnStop -PassThru:$PassThru", new: " -PassThru:$PassThru"}},
			wants: []string{"FAIL cancel: " + module, "Install-ContainerImage does not wait with -CancelOnStop"},
		},
		{
			name:  "polling instead of the event stream",
			muts:  []psMutation{{file: shared, old: "-Route GetJobEvents", new: "-Route GetJob"}},
			wants: []string{"FAIL cancel: " + shared, "Wait-ContainerProviderJob does not call route GetJobEvents", "FAIL routes: " + shared, "route GetJobEvents is used by no function"},
		},
		{
			name:  "request credential as the token",
			muts:  []psMutation{{file: provider, new: "function Test-Mutation {\n    Invoke-ContainerImageApi @{ Route = 'GetSources'; Credential = (Get-RequestCredential) }\n}"}},
			wants: []string{"FAIL credentials: ", "Test-Mutation reads the request's credential, the registry's", "Test-Mutation: a Credential argument of the shared module's calls would send the request's credential to providerd"},
		},
		{
			name:  "a variable read before it is set",
			muts:  []psMutation{{file: shared, old: "    # Streams in a row that ended or broke before any event.\n    $rounds = 0\n", new: ""}},
			wants: []string{"FAIL strict: " + shared, "Wait-ContainerProviderJob reads $rounds before assigning it"},
		},
		{
			name:  "Save without -Destination",
			muts:  []psMutation{{file: module, old: "        [Alias('Destination')]\n", new: ""}},
			wants: []string{"Save-ContainerImage -Path has not the -Destination alias of ContainerProvider 0.5"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, ok := runContractCheck(t, mutatedModule(t, c.muts...))
			if ok {
				t.Fatalf("the check passes a module with the defect:\n%s", out)
			}
			for _, w := range c.wants {
				if !strings.Contains(out, w) {
					t.Errorf("the check does not report %q:\n%s", w, out)
				}
			}
		})
	}
}

// Package repotest holds tests of the repository's own rules, which no
// single package owns: no non-test Go file over 400 lines.
package repotest

// Package consultest holds what the tests of the Consul sink's packages
// share: a lock whose holder the test decides (Locker), a log that the test
// reads back (NewLogger), Consul's messages and errors as consul/api returns
// them, and the parsing of the filters the fakes answer.
package consultest

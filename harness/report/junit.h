// JUnit XML for CI servers (`kaharness run --junit FILE`): Jenkins, GitLab, GitHub
// test reporters read it to show which case and connection failed without opening logs.
//
// Shape (the common schema, Jenkins xunit-plugin junit-10.xsd, which GitLab reads too):
//   <testsuites name tests failures errors time>     (no "skipped" here: the schema has none)
//     <testsuite name=case tests failures errors skipped time file>
//       <properties> kernel, hz, hz_source </properties>
//       <testcase classname=case name=connection time>
//         <failure message=...>details</failure> | <error message=...>...</error> | <skipped/>
// A connection's time is how long it was watched: from the last received segment to
// the outcome (or the horizon). A case that could not run has its CaseResult::error
// on each of its connections, or on a single testcase named after the case when it has none.
#pragma once

#include <string>

#include "harness/judge/result.h"

namespace kah {

std::string junit_xml(const RunResult& run);

}  // namespace kah

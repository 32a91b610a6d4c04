import Foundation

/// `--json` of every command that reports (docs/cli.md, "JSON output").
///
/// One rule for all: with `--json` a command writes exactly one JSON document to stdout, then a newline, and
/// nothing else there; text meant for people (progress, log lines, warnings, errors) goes to stderr. A report is
/// one object. A list is an object too, with the array under a plural name (`{"runs": […]}`): fields can be added
/// beside it later without breaking a reader. Only streams — output with no bound, or that goes on over time
/// (`panel export`, `schedule --json`) — are NDJSON, one object per line.
///
/// A command that fails exits non-zero (docs/cli.md, "Exit status"); where the failure is itself the report (a
/// failed run's record, a connection test that stopped at a step), that report is still the document on stdout.
enum JSONOutput {
    /// Writes `document` and a newline to stdout, in one write.
    static func emit(_ document: [UInt8]) {
        var bytes = document
        bytes.append(UInt8(ascii: "\n"))
        FileHandle.standardOutput.write(Data(bytes))
    }

    /// Writes one line of an NDJSON stream and flushes it (a reader of a pipe sees each line when it is written).
    static func emitLine(_ object: [UInt8]) {
        emit(object)
    }
}

import Foundation
import Testing

@testable import CDFSyncStorage

/// A fresh temporary directory for one test, removed afterwards.
func withTemporaryDirectory<R>(_ body: (String) throws -> R) throws -> R {
    let path = NSTemporaryDirectory() + "cdfsync-storage-tests-" + UUID().uuidString
    try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: path) }
    return try body(path)
}

/// The UTF-8 bytes of `text`.
func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// A small JSON record.
func record(_ name: String, _ n: Int = 0) -> [UInt8] { bytes(#"{"name":"\#(name)","n":\#(n)}"#) }

/// Every line of every segment file listed in `files` (in order), decompressed with real zstd.
func deliveredLines(_ directory: String, _ files: [String]) throws -> [String] {
    var lines: [String] = []
    for file in files {
        let content = try ZstdFileReader(path: directory + "/" + file).readAll()
        let text = String(decoding: content, as: UTF8.self)
        #expect(text.hasSuffix("\n"))
        lines.append(contentsOf: text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init))
    }
    return lines
}

/// The segment files present in `directory`, sorted by name.
func segmentFiles(_ directory: String) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: directory)
        .filter { PanelStore.parseSegmentFileName($0) != nil }.sorted()
}

/// Decodes one JSON object line.
func jsonObject(_ line: String) throws -> [String: Any] {
    let object = try JSONSerialization.jsonObject(with: Data(line.utf8))
    return try #require(object as? [String: Any])
}

/// This test bundle started again as a child process that runs only the tests matching `filter`, with the
/// environment variable `variable` set to `value` (the child-side tests are enabled by it). Its output goes
/// nowhere unless the caller sets `standardOutput`; not started yet.
func childTestProcess(filter: String, variable: String, value: String) -> Process {
    let child = Process()
    child.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
    child.arguments = ["--testing-library", "swift-testing", "--filter", filter]
    var environment = ProcessInfo.processInfo.environment
    environment[variable] = value
    child.environment = environment
    child.standardOutput = FileHandle.nullDevice
    child.standardError = FileHandle.nullDevice
    return child
}

import CDFSyncTestSupport
import Foundation
import Testing

@testable import CDFSyncStorage

/// A fresh temporary directory for one test, removed afterwards.
func withTemporaryDirectory<R>(_ body: (String) throws -> R) throws -> R {
    try CDFSyncTestSupport.withTemporaryDirectory("cdfsync-storage-tests", body)
}

/// The UTF-8 bytes of `text`.
func bytes(_ text: String) -> [UInt8] { Array(text.utf8) }

/// A small JSON record: `{"name":"<name>","n":<n>}` (the records the test child writes too).
func record(_ name: String, _ n: Int = 0) -> [UInt8] { TestChild.record(name, n) }

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

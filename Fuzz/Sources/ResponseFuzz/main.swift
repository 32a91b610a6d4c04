import CDFSyncCore
import Foundation

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

// libFuzzer's driver, started from this program's own `main`. SwiftPM links libFuzzer's archive whole, `main`
// included, beside the executable's own (`make fuzz` lets the linker keep the first); either one runs the driver on
// `LLVMFuzzerTestOneInput` below.
var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(LLVMFuzzerRunDriver(&argc, &argv) { data, size in fuzz(data, size) })

/// One input: its first byte picks what the rest is fed to, the second where bodies are cut.
///
/// Besides "no trap, no hang", it checks that the decoder's result does not depend on how the body arrives: fed
/// whole and fed in pieces (cut every `step` bytes), the rows, the row count and the error (if any) must be the
/// same. A difference traps, which libFuzzer reports with the input.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    guard size >= 2 else { return 0 }
    let mode = data[0] % 4
    let step = Int(data[1] % 31) + 1
    let body = UnsafeRawBufferPointer(start: data + 2, count: size - 2)
    switch mode {
    case 0, 1:
        let layout: ResultStreamDecoder.Layout = mode == 0 ? .envelope : .bareArray
        let expected: Int? = data[1] & 0x80 != 0 ? Int(data[1] % 5) : nil
        let whole = decode(body, layout: layout, expected: expected, step: body.count)
        let pieces = decode(body, layout: layout, expected: expected, step: step)
        precondition(whole.rows == pieces.rows && whole.error == pieces.error, "decoding depends on how the body is cut")
        if case .some(let metadata) = whole.metadata { models(metadata) }
    case 2:
        models(Array(body))
    default:
        history(body)
    }
    return 0
}

struct Decoded {
    var rows: [[String?]] = []
    var error: String?
    var metadata: [UInt8]?
}

func decode(_ body: UnsafeRawBufferPointer, layout: ResultStreamDecoder.Layout, expected: Int?, step: Int) -> Decoded {
    var out = Decoded()
    var decoder = ResultStreamDecoder(layout: layout, expectedColumnCount: expected)
    do {
        var i = 0
        while i < body.count {
            let piece = UnsafeRawBufferPointer(rebasing: body[i..<min(body.count, i + max(1, step))])
            try decoder.feed(piece) { row in
                var values: [String?] = []
                for c in 0..<row.count { values.append(row.string(c)) }
                out.rows.append(values)
            }
            i += max(1, step)
        }
        out.metadata = try decoder.finish()
    } catch let e as JSONArrayDecodingError {
        out.error = e.reason
    } catch {
        out.error = "\(error)"
    }
    return out
}

/// The response models over the envelope's metadata, and the manifest's consistency rule.
func models(_ json: [UInt8]) {
    let data = Data(json)
    if let r = try? JSONDecoder().decode(StatementResponse.self, from: data) {
        _ = r.manifest?.inconsistency
        _ = r.status?.error?.parsedClass
    }
    if let m = try? JSONDecoder().decode(ResultManifest.self, from: data) { _ = m.inconsistency }
    _ = try? JSONDecoder().decode(ResultData.self, from: data)
}

/// DESCRIBE HISTORY rows made of the input (a bare JSON_ARRAY body of rows of 15 columns, or whatever it holds).
func history(_ body: UnsafeRawBufferPointer) {
    let decoded = decode(body, layout: .bareArray, expected: nil, step: body.count)
    let names = ["version", "timestamp", "userid", "username", "operation", "operationparameters", "job", "notebook",
                 "clusterid", "readversion", "isolationlevel", "isblindappend", "operationmetrics", "usermetadata",
                 "engineinfo"]
    let records = decoded.rows.map { row -> [String: String?] in
        var r: [String: String?] = [:]
        for (i, v) in row.enumerated() { r[names[i % names.count]] = v }
        return r
    }
    let entries = HistoryEntry.entries(records: records)
    for e in entries { _ = e.estimatedChangeRows }
    let latest = entries.first?.version ?? Int64(body.count)
    _ = HistoryEntry.listingProblem(entries, latest: latest)
    _ = HistoryEntry.listingProblem(entries, latest: latest.saturatingAdd(Int64(body.count)))
}

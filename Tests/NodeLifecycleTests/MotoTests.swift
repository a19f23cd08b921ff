import KLCore
import KLSystem
import KLTestSupport
import Testing
@testable import NodeLifecycleKit

/// A moto_server started with signature checking on (see Support/moto_harness.py).
struct Moto {
    var url: String
    var pid: Int
    var accessKey: String
    var secretKey: String
    var queueURL: String
    var roleARN: String
    var dir: String
    /// Three EC2 instances: the first and third tagged cluster=prod, the second cluster=staging.
    var instances: [String]

    static func start() throws -> Moto {
        let dir = makeTemporaryDirectory(prefix: "nodelifecycle-test")
        let run = runCommand("python3 '\(testsDirectory)/Support/moto_harness.py' start '\(dir)' 2>'\(dir)/harness.err'")
        try #require(run.status == 0, "moto_server did not start: \(readTextFile(dir + "/harness.err") ?? "")")
        let j = try JSON.parse(run.output)
        return Moto(url: j["url"]!.stringValue!, pid: j["pid"]!.intValue!, accessKey: j["access_key"]!.stringValue!,
                    secretKey: j["secret_key"]!.stringValue!, queueURL: j["queue_url"]!.stringValue!,
                    roleARN: j["role_arn"]!.stringValue!, dir: dir,
                    instances: (j["instances"]?.arrayValue ?? []).compactMap(\.stringValue))
    }

    func stop() { _ = runCommand("python3 '\(testsDirectory)/Support/moto_harness.py' stop \(pid)") }

    /// Lets the next `n` actions through unsigned (for STS web identity, which
    /// AWS does not sign but moto checks like any action).
    func allowUnsigned(_ n: Int) { _ = runCommand("python3 '\(testsDirectory)/Support/moto_harness.py' unsigned \(url) \(n)") }

    func client(secret: String? = nil, credentials: (any CredentialsProvider)? = nil) -> AWSClient {
        let creds = credentials ?? StaticCredentials(AWSCredentials(accessKeyID: accessKey, secretAccessKey: secret ?? secretKey))
        return AWSClient(transport: HTTPTransport(), credentials: creds, region: "us-east-1", timeout: .seconds(20)) { wallNow() }
    }
}

@Suite("Against moto_server with signature checking", .serialized, .timeLimit(.minutes(1)))
struct MotoTests {
    @Test func sqs_send_receive_visibility_delete() throws {
        let moto = try Moto.start()
        defer { moto.stop() }
        let sqs = SQSClient(aws: moto.client(), baseURL: moto.url)
        try sqs.send(queueURL: moto.queueURL, body: #"{"hello":"drain"}"#)
        let got = try sqs.receive(queueURL: moto.queueURL, max: 10, waitSeconds: 1, visibilityTimeout: 30)
        #expect(got.count == 1)
        let m = try #require(got.first)
        #expect(m.body == #"{"hello":"drain"}"#)
        #expect(m.receiveCount == 1)
        // Invisible for 30 s: nothing now. Then make it visible again at once.
        #expect(try sqs.receive(queueURL: moto.queueURL, waitSeconds: 0).isEmpty)
        try sqs.changeVisibility(queueURL: moto.queueURL, receiptHandle: m.receiptHandle, seconds: 0)
        let again = try sqs.receive(queueURL: moto.queueURL, waitSeconds: 1)
        #expect(again.map(\.messageID) == [m.messageID])
        #expect(again.first?.receiveCount == 2)
        try sqs.delete(queueURL: moto.queueURL, receiptHandle: again[0].receiptHandle)
        #expect(try sqs.receive(queueURL: moto.queueURL, waitSeconds: 0).isEmpty)
    }

    @Test func wrongSecret_isRejected_andTheErrorSurfaced() throws {
        let moto = try Moto.start()
        defer { moto.stop() }
        let sqs = SQSClient(aws: moto.client(secret: "not-the-secret"), baseURL: moto.url)
        do {
            _ = try sqs.receive(queueURL: moto.queueURL, waitSeconds: 0)
            Issue.record("a wrong secret was accepted")
        } catch {
            #expect(error.code == .aws)
            #expect(error.httpStatus == 403)
            #expect(error.awsCode == "SignatureDoesNotMatch", "\(error)")
            #expect(error.description.contains("ReceiveMessage failed with HTTP 403 SignatureDoesNotMatch"))
        }
        // An unknown queue surfaces SQS's own code.
        let good = SQSClient(aws: moto.client(), baseURL: moto.url)
        do {
            _ = try good.receive(queueURL: moto.url + "/123456789012/missing", waitSeconds: 0)
            Issue.record("a missing queue was accepted")
        } catch {
            #expect(error.awsCode == "AWS.SimpleQueueService.NonExistentQueue", "\(error)")
        }
    }

    @Test func webIdentity_fromSTS_thenSignsSQSCalls() throws {
        let moto = try Moto.start()
        defer { moto.stop() }
        let tokenFile = moto.dir + "/token"
        #expect(writeTextFile(tokenFile, "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6a3ViZS1zeXN0ZW06bm9kZS1saWZlY3ljbGUifQ.c2ln\n"))
        let env = ["AWS_ROLE_ARN": moto.roleARN, "AWS_WEB_IDENTITY_TOKEN_FILE": tokenFile,
                   "AWS_ENDPOINT_URL": moto.url]
        let provider = try CredentialSources.resolve(environment: env, region: "us-east-1", transport: HTTPTransport())
        moto.allowUnsigned(1)
        let creds = try provider.credentials(now: wallNow())
        #expect(creds.accessKeyID.hasPrefix("ASIA"))
        #expect(creds.sessionToken?.isEmpty == false)
        #expect(creds.expiration != nil)
        // The assumed-role credentials work against the signature-checking server.
        let sqs = SQSClient(aws: moto.client(credentials: StaticCredentials(creds)), baseURL: moto.url)
        #expect(try sqs.receive(queueURL: moto.queueURL, waitSeconds: 0).isEmpty)
    }

    @Test func imdsV2_credentialsAndInstanceID() throws {
        let moto = try Moto.start()
        defer { moto.stop() }
        let provider = try CredentialSources.resolve(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": moto.url],
                                                     region: "us-east-1", transport: HTTPTransport())
        #expect(provider.source == "instance metadata (IMDSv2)")
        let creds = try provider.credentials(now: wallNow())
        #expect(creds.accessKeyID == "test-key")
        #expect(creds.sessionToken == "test-session-token")
        #expect(creds.expiration != nil)
        #expect(try IMDS(baseURL: moto.url, transport: HTTPTransport()).instanceID() == "i-fake")
    }

    /// `--managed-tag` reads tags with DescribeTags (Query API, SigV4
    /// checked by moto) and caches the answer per instance.
    @Test func describeTags_managedTag_againstMotoEC2() throws {
        let moto = try Moto.start()
        defer { moto.stop() }
        try #require(moto.instances.count == 3)
        let ec2 = EC2Client(aws: moto.client(), baseURL: moto.url)
        #expect(try ec2.tagValue(instanceID: moto.instances[0], key: "cluster") == "prod")
        #expect(try ec2.tagValue(instanceID: moto.instances[1], key: "cluster") == "staging")
        #expect(try ec2.tagValue(instanceID: moto.instances[0], key: "absent") == nil)
        let managed = ManagedTag(key: "cluster", value: "prod", tags: ec2)
        #expect(try managed.isManaged(moto.instances[0]))
        #expect(try !managed.isManaged(moto.instances[1]))
        #expect(try managed.isManaged(moto.instances[0]))
        #expect(managed.lookups == 2)
        #expect(try ManagedTag(key: "cluster", value: nil, tags: ec2).isManaged(moto.instances[1]))
        // One call for a receive batch: every instance's value, the untagged absent.
        #expect(try ec2.tagValues(instanceIDs: moto.instances + ["i-0000000000000000f"], key: "cluster")
                == [moto.instances[0]: "prod", moto.instances[1]: "staging", moto.instances[2]: "prod"])
        let batch = ManagedTag(key: "cluster", value: "prod", tags: ec2)
        batch.prefetch(moto.instances)
        #expect(batch.lookups == 1)
        #expect(try batch.isManaged(moto.instances[0]) && !batch.isManaged(moto.instances[1]) && batch.isManaged(moto.instances[2]))
        #expect(batch.lookups == 1)
        // A wrong secret is refused by moto's signature check, and surfaced.
        do {
            _ = try EC2Client(aws: moto.client(secret: "wrong"), baseURL: moto.url).tagValue(instanceID: moto.instances[0], key: "cluster")
            Issue.record("a wrong secret was accepted")
        } catch {
            #expect(error.httpStatus == 401 || error.httpStatus == 403, "\(error)")
        }
    }
}

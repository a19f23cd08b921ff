import KLCore
import Synchronization
import Testing
@testable import NodeLifecycleKit

let fixedNow = wallTime(amz: "20261128T100000Z")
let testCreds = AWSCredentials(accessKeyID: "AKIDEXAMPLE", secretAccessKey: "secret")

@Suite("AWS core")
struct AWSCoreTests {
    @Test func xml_readsLeavesEntitiesAndCDATA() throws {
        let xml = try #require(XMLLeaves("""
            <?xml version="1.0"?>
            <ErrorResponse xmlns="http://x/"><Error><Type>Sender</Type><Code>ValidationError</Code>
            <Message>No active Lifecycle Action found with instance ID i-1 &amp; token &lt;t&gt; &#65;&#x42;</Message></Error>
            <!-- comment --><Empty/><Data><![CDATA[a<b]]></Data><RequestId>r-1</RequestId></ErrorResponse>
            """))
        #expect(xml.first("Error", "Code") == "ValidationError")
        #expect(xml.first("Message") == "No active Lifecycle Action found with instance ID i-1 & token <t> AB")
        #expect(xml.first("Data") == "a<b")
        #expect(xml.first("Empty") == "")
        #expect(xml.first("RequestId") == "r-1")
        #expect(XMLLeaves("<a><b></a>") == nil)
        #expect(XMLLeaves("<a>") == nil)
    }

    @Test func endpoints_followTheSDKOverrideOrder() {
        #expect(AWSService.sqs.endpoint(region: "eu-west-1", environment: [:]) == "https://sqs.eu-west-1.amazonaws.com")
        #expect(AWSService.autoScaling.endpoint(region: "cn-north-1", environment: [:]) == "https://autoscaling.cn-north-1.amazonaws.com.cn")
        let env = ["AWS_ENDPOINT_URL": "http://127.0.0.1:5000/", "AWS_ENDPOINT_URL_CLOUDFORMATION": "http://127.0.0.1:6000"]
        #expect(AWSService.sqs.endpoint(region: "eu-west-1", environment: env) == "http://127.0.0.1:5000")
        #expect(AWSService.cloudFormation.endpoint(region: "eu-west-1", environment: env) == "http://127.0.0.1:6000")
        #expect(SQSClient.region(fromQueueURL: "https://sqs.eu-central-1.amazonaws.com/123456789012/q") == "eu-central-1")
        #expect(SQSClient.region(fromQueueURL: "http://127.0.0.1:5000/123456789012/q") == nil)
        #expect(AWSURL("http://127.0.0.1:80/x")?.hostHeader == "127.0.0.1")
        #expect(AWSURL("https://h:8443")?.base == "https://h:8443")
        #expect(AWSURL("ftp://h") == nil)
    }

    @Test func sqsJSONError_surfacesCodeAndMessage() {
        let response = textResponse(400, #"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."}"#,
                                    headers: [AWSHeader("x-amzn-query-error", "AWS.SimpleQueueService.NonExistentQueue;Sender")])
        let e = AWSErrorParser.error(service: .sqs, action: "ReceiveMessage", response: response)
        #expect(e.code == .aws)
        #expect(e.awsCode == "AWS.SimpleQueueService.NonExistentQueue")
        #expect(e.description == "AWS sqs ReceiveMessage failed with HTTP 400 AWS.SimpleQueueService.NonExistentQueue: The specified queue does not exist. Check --queue-url and the region.")
    }

    @Test func queryXMLError_surfacesCodeAndMessage() {
        let response = textResponse(403, "<ErrorResponse><Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match the signature you provided.</Message></Error></ErrorResponse>")
        let e = AWSErrorParser.error(service: .autoScaling, action: "CompleteLifecycleAction", response: response)
        #expect(e.awsCode == "SignatureDoesNotMatch")
        #expect(e.httpStatus == 403)
        #expect(e.description.contains("CompleteLifecycleAction failed with HTTP 403 SignatureDoesNotMatch: The request signature"))
        #expect(e.description.contains("secret access key"))
    }

    @Test func sqsReceive_sendsSignedJSON_andParsesMessages() throws {
        let fake = FakeTransport { _, _ in
            textResponse(200, #"{"Messages":[{"MessageId":"m1","ReceiptHandle":"rh1","Body":"{}","Attributes":{"ApproximateReceiveCount":"3"}}]}"#)
        }
        let aws = AWSClient(transport: fake, credentials: StaticCredentials(testCreds), region: "eu-west-1") { fixedNow }
        let sqs = SQSClient(aws: aws, baseURL: "https://sqs.eu-west-1.amazonaws.com")
        let messages = try sqs.receive(queueURL: "https://sqs.eu-west-1.amazonaws.com/1/q", max: 5, waitSeconds: 20)
        #expect(messages == [SQSMessage(messageID: "m1", receiptHandle: "rh1", body: "{}", receiveCount: 3)])
        let sent = try #require(fake.requests.first)
        #expect(sent.baseURL == "https://sqs.eu-west-1.amazonaws.com")
        #expect(sent.request.header("X-Amz-Target") == "AmazonSQS.ReceiveMessage")
        #expect(sent.request.header("Host") == "sqs.eu-west-1.amazonaws.com")
        #expect(sent.request.header("Authorization")?.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261128/eu-west-1/sqs/aws4_request") == true)
        let body = try JSON.parse(bytes: sent.request.body)
        #expect(body["MaxNumberOfMessages"]?.intValue == 5)
        #expect(body["WaitTimeSeconds"]?.intValue == 20)
    }

    @Test func queryClients_sendTheDocumentedParameters() throws {
        let fake = FakeTransport { _, _ in textResponse(200, "<CompleteLifecycleActionResponse><ResponseMetadata><RequestId>x</RequestId></ResponseMetadata></CompleteLifecycleActionResponse>") }
        let aws = AWSClient(transport: fake, credentials: StaticCredentials(testCreds), region: "eu-west-1") { fixedNow }
        let action = LifecycleAction(autoScalingGroupName: "asg", lifecycleHookName: "hook", lifecycleActionToken: "tok",
                                     instanceID: "i-1", transition: .terminating)
        try AutoScalingClient(aws: aws, baseURL: "https://autoscaling.eu-west-1.amazonaws.com").completeLifecycleAction(action, result: .continue)
        try AutoScalingClient(aws: aws, baseURL: "https://autoscaling.eu-west-1.amazonaws.com").recordHeartbeat(action)
        try CloudFormationClient(aws: aws, baseURL: "https://cloudformation.eu-west-1.amazonaws.com")
            .signalResource(stack: "nodes", logicalResourceID: "NodeGroup", uniqueID: "i-1", status: .failure)
        let forms = fake.requests.map { AWSPercent.parseForm(String(decoding: $0.request.body, as: UTF8.self)) }
        #expect(forms[0].map { "\($0.0)=\($0.1)" } == ["Action=CompleteLifecycleAction", "Version=2011-01-01", "AutoScalingGroupName=asg",
                                                   "InstanceId=i-1", "LifecycleActionToken=tok", "LifecycleHookName=hook",
                                                   "LifecycleActionResult=CONTINUE"])
        #expect(forms[1].first { $0.0 == "Action" }?.1 == "RecordLifecycleActionHeartbeat")
        #expect(forms[2].map { "\($0.0)=\($0.1)" } == ["Action=SignalResource", "Version=2010-05-15", "StackName=nodes",
                                                   "LogicalResourceId=NodeGroup", "UniqueId=i-1", "Status=FAILURE"])
        #expect(fake.requests[2].request.header("Authorization")?.contains("/eu-west-1/cloudformation/aws4_request") == true)
    }

    @Test func noActiveLifecycleAction_isRecognised() {
        let e = AWSErrorParser.error(service: .autoScaling, action: "CompleteLifecycleAction", response: textResponse(400,
            "<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>No active Lifecycle Action found with instance ID i-1</Message></Error></ErrorResponse>"))
        #expect(AutoScalingClient.isNoActiveAction(e))
    }
}

@Suite("AWS credentials")
struct CredentialsTests {
    let noIMDS = ["AWS_EC2_METADATA_DISABLED": "true"]
    let unused = FakeTransport { _, _ in textResponse(500, "unexpected") }

    @Test func env_accessKeyAndSessionToken() throws {
        let p = try CredentialSources.resolve(environment: ["AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK", "AWS_SESSION_TOKEN": "T"],
                                              region: "eu-west-1", transport: unused)
        #expect(try p.credentials(now: fixedNow) == AWSCredentials(accessKeyID: "AK", secretAccessKey: "SK", sessionToken: "T"))
        #expect(p.source == "environment")
        #expect(unused.requests.isEmpty)
    }

    @Test func env_halfSet_isAClearError() {
        #expect(throws: NodeLifecycleError.self) {
            _ = try CredentialSources.resolve(environment: ["AWS_ACCESS_KEY_ID": "AK"], region: nil, transport: unused)
        }
    }

    @Test func nothingConfigured_saysWhatToSet() {
        do {
            _ = try CredentialSources.resolve(environment: noIMDS, region: nil, transport: unused)
            Issue.record("resolved")
        } catch {
            #expect(error.code == .credentials)
            #expect(error.description.contains("AWS_WEB_IDENTITY_TOKEN_FILE"))
        }
    }

    static let stsAnswer = """
        <AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><AssumeRoleWithWebIdentityResult>
        <Credentials><AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>s3cr3t</SecretAccessKey>
        <SessionToken>sess</SessionToken><Expiration>2026-11-28T11:00:00Z</Expiration></Credentials>
        </AssumeRoleWithWebIdentityResult></AssumeRoleWithWebIdentityResponse>
        """

    @Test func webIdentity_readsTokenFileEachRefresh_andRefreshesBeforeExpiry() throws {
        let fake = FakeTransport { _, _ in textResponse(200, Self.stsAnswer) }
        let reads = ManagedCounter()
        let env = ["AWS_ROLE_ARN": "arn:aws:iam::1:role/drain", "AWS_WEB_IDENTITY_TOKEN_FILE": "/var/run/token",
                   "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9999"]
        let p = try CredentialSources.resolve(environment: env, region: "eu-west-1", transport: fake) { path throws(NodeLifecycleError) in
            reads.increment()
            return "jwt-\(reads.value)\n"
        }
        let c = try p.credentials(now: fixedNow)
        #expect(c == AWSCredentials(accessKeyID: "ASIAEXAMPLE", secretAccessKey: "s3cr3t", sessionToken: "sess",
                                    expiration: RFC3339.parse("2026-11-28T11:00:00Z")))
        // Cached until 5 minutes before expiry (11:00).
        _ = try p.credentials(now: fixedNow.adding(.seconds(54 * 60)))
        #expect(p.fetchCount == 1)
        _ = try p.credentials(now: fixedNow.adding(.seconds(55 * 60)))
        #expect(p.fetchCount == 2)
        let forms = fake.requests.map { AWSPercent.parseForm(String(decoding: $0.request.body, as: UTF8.self)) }
        #expect(forms[0].first { $0.0 == "WebIdentityToken" }?.1 == "jwt-1")
        #expect(forms[1].first { $0.0 == "WebIdentityToken" }?.1 == "jwt-2")
        #expect(forms[0].first { $0.0 == "RoleArn" }?.1 == "arn:aws:iam::1:role/drain")
        #expect(fake.requests[0].request.header("Authorization") == nil)
        #expect(fake.requests[0].baseURL == "http://127.0.0.1:9999")
    }

    @Test func webIdentity_unreadableTokenFile_namesTheFile() throws {
        let env = ["AWS_ROLE_ARN": "arn:aws:iam::1:role/drain", "AWS_WEB_IDENTITY_TOKEN_FILE": "/nonexistent/token"]
        let p = try CredentialSources.resolve(environment: env, region: "eu-west-1", transport: unused)
        do {
            _ = try p.credentials(now: fixedNow)
            Issue.record("got credentials")
        } catch {
            #expect(error.code == .file)
            #expect(error.description == "Cannot read /nonexistent/token: No such file or directory; check the volume mount and the file's permissions.")
        }
    }

    @Test func webIdentity_stsError_isSurfaced() throws {
        let fake = FakeTransport { _, _ in
            textResponse(400, "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>Couldn't retrieve verification key from your identity provider</Message></Error></ErrorResponse>")
        }
        let env = ["AWS_ROLE_ARN": "arn:aws:iam::1:role/drain", "AWS_WEB_IDENTITY_TOKEN_FILE": "/t"]
        let p = try CredentialSources.resolve(environment: env, region: "eu-west-1", transport: fake) { _ throws(NodeLifecycleError) in "jwt" }
        #expect(throws: NodeLifecycleError.self) { _ = try p.credentials(now: fixedNow) }
        do { _ = try p.credentials(now: fixedNow) } catch {
            #expect(error.awsCode == "InvalidIdentityToken")
            #expect(error.description.contains("AssumeRoleWithWebIdentity failed with HTTP 400 InvalidIdentityToken"))
        }
    }

    @Test func podIdentity_sendsTheTokenFileAsAuthorization() throws {
        let fake = FakeTransport { _, _ in
            textResponse(200, #"{"AccessKeyId":"ASIAPOD","SecretAccessKey":"podsecret","Token":"podtoken","AccountId":"1","Expiration":"2026-11-28T16:00:00Z"}"#)
        }
        let env = ["AWS_CONTAINER_CREDENTIALS_FULL_URI": "http://169.254.170.23/v1/credentials",
                   "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": "/var/run/secrets/pods.eks.amazonaws.com/serviceaccount/eks-pod-identity-token"]
        let p = try CredentialSources.resolve(environment: env, region: nil, transport: fake) { _ throws(NodeLifecycleError) in "pod-jwt\n" }
        let c = try p.credentials(now: fixedNow)
        #expect(c.accessKeyID == "ASIAPOD" && c.sessionToken == "podtoken")
        let r = try #require(fake.requests.first)
        #expect(r.baseURL == "http://169.254.170.23")
        #expect(r.request.target == "/v1/credentials")
        #expect(r.request.header("Authorization") == "pod-jwt")
    }

    @Test func imdsV2_putsAToken_thenReadsTheRoleCredentials() throws {
        let fake = FakeTransport { _, r in
            switch (r.method, r.target) {
            case ("PUT", "/latest/api/token"):
                return r.header("X-aws-ec2-metadata-token-ttl-seconds") == "21600" ? textResponse(200, "imds-token") : textResponse(400, "")
            case (_, _) where r.header("X-aws-ec2-metadata-token") != "imds-token":
                return textResponse(401, "")
            case ("GET", "/latest/meta-data/iam/security-credentials/"):
                return textResponse(200, "node-role")
            case ("GET", "/latest/meta-data/iam/security-credentials/node-role"):
                return textResponse(200, #"{"Code":"Success","AccessKeyId":"ASIAIMDS","SecretAccessKey":"imds","Token":"t","Expiration":"2026-11-28T12:00:00Z"}"#)
            case ("GET", "/latest/meta-data/instance-id"):
                return textResponse(200, "i-0abc")
            default:
                return textResponse(404, "")
            }
        }
        let p = try CredentialSources.resolve(environment: [:], region: nil, transport: fake)
        #expect(try p.credentials(now: fixedNow).accessKeyID == "ASIAIMDS")
        #expect(fake.requests.first?.baseURL == "http://169.254.169.254")
        #expect(try IMDS(transport: fake).instanceID() == "i-0abc")
    }

    @Test func refreshFailure_keepsStillValidCredentials() throws {
        let calls = ManagedCounter()
        let p = RefreshingCredentials(source: "test") { now throws(NodeLifecycleError) in
            calls.increment()
            if calls.value > 1 { throw NodeLifecycleError(.transport, "down") }
            return AWSCredentials(accessKeyID: "A", secretAccessKey: "S", expiration: fixedNow.adding(.seconds(600)))
        }
        _ = try p.credentials(now: fixedNow)
        // Due for refresh (within 5 min), refresh fails, old ones still valid.
        #expect(try p.credentials(now: fixedNow.adding(.seconds(400))).accessKeyID == "A")
        // Expired: the failure surfaces.
        #expect(throws: NodeLifecycleError.self) { _ = try p.credentials(now: fixedNow.adding(.seconds(601))) }
    }
}

/// A thread-safe counter for closures.
final class ManagedCounter: Sendable {
    private let n = Atomic<Int>(0)
    func increment() { n.add(1, ordering: .relaxed) }
    var value: Int { n.load(ordering: .relaxed) }
}

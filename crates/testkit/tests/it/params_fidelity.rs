//! Parameter Store answers that once differed from AWS's, through the real SDK: an
//! `aws:ec2:image` value is validated after PutParameter answers; an invalid one is not
//! stored, and the failed validation is found in the audit trail.

use aws_sdk_ssm::error::ProvideErrorMetadata;
use aws_sdk_ssm::types::ParameterType;
use keyhold_testkit::TestServer;
use serde_json::Value;

/// The audit trail's service events, parsed, in order.
fn service_events(server: &TestServer) -> Vec<Value> {
    keyhold_testkit::audit_files::records(server.data_dir())
        .into_iter()
        .filter(|r| r["eventType"] == "AwsServiceEvent")
        .collect()
}

#[tokio::test]
async fn an_invalid_image_id_is_accepted_then_not_stored() {
    let server = TestServer::start().await;
    let ssm = server.ssm();

    // A new parameter: 200 with version 1, then no parameter.
    let r = ssm
        .put_parameter()
        .name("/images/bad")
        .value("ami-nothex!")
        .r#type(ParameterType::String)
        .data_type("aws:ec2:image")
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), 1);
    let e = ssm
        .get_parameter()
        .name("/images/bad")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ParameterNotFound"));

    // An update: 200 with the next version, the parameter stays as it was.
    ssm.put_parameter()
        .name("/images/golden")
        .value("ami-0123456789abcdef0")
        .r#type(ParameterType::String)
        .data_type("aws:ec2:image")
        .send()
        .await
        .unwrap();
    let r = ssm
        .put_parameter()
        .name("/images/golden")
        .value("ami-123")
        .overwrite(true)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), 2);
    let p = ssm
        .get_parameter()
        .name("/images/golden")
        .send()
        .await
        .unwrap();
    let p = p.parameter().unwrap();
    assert_eq!(p.value(), Some("ami-0123456789abcdef0"));
    assert_eq!(p.version(), 1);
    let history = ssm
        .get_parameter_history()
        .name("/images/golden")
        .send()
        .await
        .unwrap();
    assert_eq!(history.parameters().len(), 1);
    // The version number was not used: the next valid value is version 2.
    let r = ssm
        .put_parameter()
        .name("/images/golden")
        .value("ami-12345678")
        .overwrite(true)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), 2);

    // Each failed validation is in the audit trail, as a service event of the parameter.
    let events = service_events(&server);
    assert_eq!(events.len(), 2, "{events:#?}");
    let created = &events[0];
    assert_eq!(created["eventSource"], "ssm.amazonaws.com");
    assert_eq!(created["eventName"], "ParameterDataTypeValidation");
    assert_eq!(created["userIdentity"]["invokedBy"], "ssm.amazonaws.com");
    assert_eq!(created["recipientAccountId"], "000000000000");
    assert_eq!(
        created["resources"][0]["ARN"],
        "arn:aws:ssm:us-east-1:000000000000:parameter/images/bad"
    );
    let details = &created["serviceEventDetails"];
    assert_eq!(details["operation"], "Create");
    assert_eq!(details["name"], "/images/bad");
    assert_eq!(details["dataType"], "aws:ec2:image");
    assert_eq!(details["version"], 1);
    assert_eq!(details["status"], "Failed");
    assert_eq!(details["exception"], "Unable to Describe Resource");
    let updated = &events[1]["serviceEventDetails"];
    assert_eq!(updated["operation"], "Update");
    assert_eq!(updated["name"], "/images/golden");
    assert_eq!(updated["version"], 2);

    // CloudTrail's LookupEvents finds them by name.
    let r = server
        .raw_json(
            "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents",
            r#"{"LookupAttributes":[{"AttributeKey":"EventName","AttributeValue":"ParameterDataTypeValidation"}]}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body_text());
    assert_eq!(r.json()["Events"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn image_data_type_refusals_that_stay_synchronous() {
    let server = TestServer::start().await;
    let ssm = server.ssm();
    // Not a String: refused at once, as before.
    let e = ssm
        .put_parameter()
        .name("/images/secure")
        .value("ami-12345678")
        .r#type(ParameterType::SecureString)
        .data_type("aws:ec2:image")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            Some("ValidationException"),
            Some("The data type aws:ec2:image can only be used with String parameters.")
        )
    );
    // An existing parameter without Overwrite: refused at once, whatever the value.
    ssm.put_parameter()
        .name("/images/one")
        .value("ami-12345678")
        .r#type(ParameterType::String)
        .data_type("aws:ec2:image")
        .send()
        .await
        .unwrap();
    let e = ssm
        .put_parameter()
        .name("/images/one")
        .value("bad")
        .r#type(ParameterType::String)
        .data_type("aws:ec2:image")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ParameterAlreadyExists"));
    assert!(service_events(&server).is_empty());
}

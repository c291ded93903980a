//! Campaign status transitions (A1 -> A2, A2 -> A3), at most once per campaign per transition.
//!
//! Protocol (design.md §3): (1) record the intent (`campaign_transitions` row, `pending`);
//! (2) read the campaign folder and set the status field in the DAM only if it is not already
//! the target; (3) in one transaction mark the transition `done`, update `campaigns.status`
//! and queue its notifications. A crash between any two steps is resumed by the next pass from
//! the `pending` row, and step 2 sees the DAM already changed, so the DAM is changed once and the
//! notifications are queued once.

use serde_json::{json, Value};

use super::{PassError, Services};
use crate::metadata::field_text;
use crate::notify_plan::{self, AssetFacts, CampaignFacts};
use crate::store::{CampaignRow, NewNotification, NotificationChannel, TransitionState};

/// One transition to make.
pub(crate) struct Transition<'a> {
    pub from: &'a str,
    pub to: &'a str,
    /// Webhook event, e.g. `campaign.a2`.
    pub event: &'a str,
    /// Success email template.
    pub template: &'a str,
}

/// Makes the transition for `campaign` (see module docs). `context` is the email's template
/// context, `assets` what the webhooks list as `processed_assets`. Returns `true` when this
/// call completed it, `false` when it had already been completed.
pub(crate) fn advance(
    services: &mut Services,
    campaign: &CampaignRow,
    transition: &Transition<'_>,
    context: Value,
    assets: &[AssetFacts<'_>],
) -> Result<bool, PassError> {
    let id = campaign.dam_folder_id.as_str();
    if services
        .store
        .begin_transition(id, transition.from, transition.to)?
        == TransitionState::Done
    {
        return Ok(false);
    }
    let status_field = services.config.dam.campaign.status_field_id.clone();
    let folder = services.dam.get_folder(id).map_err(PassError::from_dam)?;
    let current = field_text(&folder.json, &status_field);
    if current.as_deref() == Some(transition.to) {
        tracing::info!(campaign = %campaign.number, status = transition.to, "DAM status already set (resumed transition)");
    } else {
        services
            .dam
            .set_folder_field(id, &status_field, transition.to)
            .map_err(PassError::from_dam)?;
        tracing::info!(campaign = %campaign.number, from = transition.from, to = transition.to, "campaign status changed in the DAM");
    }
    crash_point!("transition::after_status_change");
    let values = notify_plan::campaign_status_values(
        transition.event,
        &campaign_facts(campaign),
        transition.from,
        transition.to,
        assets,
        jiff::Timestamp::now().as_second(),
    );
    let mut notifications = success_email(
        services,
        transition.event,
        transition.template,
        id,
        &context,
    );
    notifications.extend(webhook_notifications(
        services,
        transition.event,
        &format!("{}:{id}", transition.event),
        &context,
        &values,
    ));
    let completed = services
        .store
        .complete_transition(id, transition.to, &notifications)?;
    crash_point!("transition::after_outbox_write");
    Ok(completed)
}

/// The email to the success recipients for a campaign event (none when email is off or nobody
/// receives success emails), keyed `{event}:{campaign_id}:email`.
fn success_email(
    services: &Services,
    event: &str,
    template: &str,
    campaign_id: &str,
    context: &Value,
) -> Vec<NewNotification> {
    let email = &services.config.email;
    if !email.enabled || email.success_recipients.is_empty() {
        return Vec::new();
    }
    vec![NewNotification {
        idempotency_key: format!("{event}:{campaign_id}:email"),
        channel: NotificationChannel::Email,
        target: template.to_string(),
        event: event.to_string(),
        payload: json!({ "to": email.success_recipients, "context": context }),
    }]
}

/// One webhook notification per endpoint subscribed to `event`, keyed
/// `{key_base}:webhook:{endpoint}`. The payload is what the endpoint is sent: its
/// `payload_template` filled with `values` (the plan's form), else `context` (the `data` of the
/// project's envelope).
pub(crate) fn webhook_notifications(
    services: &Services,
    event: &str,
    key_base: &str,
    context: &Value,
    values: &Value,
) -> Vec<NewNotification> {
    let mut notifications = Vec::new();
    for endpoint in &services.config.webhooks.endpoints {
        if !crate::notify::subscribes(endpoint, event) {
            continue;
        }
        let payload = match &endpoint.payload_template {
            None => context.clone(),
            Some(template) => match notify_plan::fill_payload_template(template, values) {
                Ok(body) => body,
                Err(error) => {
                    // Checked with sample values at load, so only a new event can get here.
                    tracing::error!(endpoint = %endpoint.name, event, %error, "webhook payload_template cannot be filled; not sent");
                    continue;
                }
            },
        };
        notifications.push(NewNotification {
            idempotency_key: format!("{key_base}:webhook:{}", endpoint.name),
            channel: NotificationChannel::Webhook,
            target: endpoint.name.clone(),
            event: event.to_string(),
            payload,
        });
    }
    notifications
}

/// What the notifications say about `campaign`.
pub(crate) fn campaign_facts(campaign: &CampaignRow) -> CampaignFacts<'_> {
    CampaignFacts {
        dam_id: &campaign.dam_folder_id,
        number: &campaign.number,
        name: &campaign.name,
        box_folder_id: campaign.box_folder_id.as_deref(),
    }
}

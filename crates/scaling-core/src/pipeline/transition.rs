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

/// Makes the transition for `campaign` (see module docs). Returns `true` when this call
/// completed it, `false` when it had already been completed.
pub(crate) fn advance(
    services: &mut Services,
    campaign: &CampaignRow,
    transition: &Transition<'_>,
    context: Value,
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
    let notifications = notifications_for(
        services,
        transition.event,
        transition.template,
        id,
        &context,
    );
    let completed = services
        .store
        .complete_transition(id, transition.to, &notifications)?;
    crash_point!("transition::after_outbox_write");
    Ok(completed)
}

/// The email (to the success recipients) and webhooks (every endpoint subscribed to `event`)
/// for a campaign event, with idempotency keys derived from the event and campaign.
pub(crate) fn notifications_for(
    services: &Services,
    event: &str,
    template: &str,
    campaign_id: &str,
    context: &Value,
) -> Vec<NewNotification> {
    let mut notifications = Vec::new();
    let email = &services.config.email;
    if email.enabled && !email.success_recipients.is_empty() {
        notifications.push(NewNotification {
            idempotency_key: format!("{event}:{campaign_id}:email"),
            channel: NotificationChannel::Email,
            target: template.to_string(),
            event: event.to_string(),
            payload: json!({ "to": email.success_recipients, "context": context }),
        });
    }
    for endpoint in &services.config.webhooks.endpoints {
        if endpoint.events.is_empty()
            || endpoint.events.iter().any(|subscribed| subscribed == event)
        {
            notifications.push(NewNotification {
                idempotency_key: format!("{event}:{campaign_id}:webhook:{}", endpoint.name),
                channel: NotificationChannel::Webhook,
                target: endpoint.name.clone(),
                event: event.to_string(),
                payload: context.clone(),
            });
        }
    }
    notifications
}

/// The template/webhook context describing a campaign.
pub(crate) fn campaign_context(campaign: &CampaignRow) -> Value {
    json!({
        "dam_id": campaign.dam_folder_id,
        "number": campaign.number,
        "name": campaign.name,
        "box_folder_id": campaign.box_folder_id,
        "box_folder_url": campaign.box_folder_id.as_ref().map(|id| format!("https://app.box.com/folder/{id}")),
    })
}

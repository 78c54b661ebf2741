//! Dynamic pricing: an event's price levels move with sell-through and with demand, between a
//! floor and a ceiling the admin sets. The price is computed inside `decide` when a hold is placed
//! and locked in the `PlaceHold` command, so it holds for the hold's life and replaying the log
//! gives the same prices. Rule changes are commands too (`SetPricing`).

use serde::{Deserialize, Serialize};

use super::{Inventory, SectionCounts};
use crate::error::{Error, Result};
use crate::limits;

/// One step: at or above `threshold`, prices move by `adjust_percent` (negative lowers them).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PriceStep {
    pub threshold: u32,
    pub adjust_percent: i32,
}

/// How an event's prices move. Percentages are of each price level's base price.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricingRules {
    /// No price below this share of its base price.
    pub floor_percent: u32,
    /// No price above this share of its base price.
    pub ceiling_percent: u32,
    /// By sell-through of the level's sections (places held or booked, in percent of capacity):
    /// the step with the highest threshold reached applies.
    pub sell_through_steps: Vec<PriceStep>,
    /// By demand (holds placed on the event in the last minute): the step with the highest
    /// threshold reached applies, on top of the sell-through step.
    pub demand_steps: Vec<PriceStep>,
}

impl PricingRules {
    pub fn validate(&self) -> Result<()> {
        if self.floor_percent > 100 {
            return Err(Error::invalid(
                "rules.floor_percent",
                format!("must be at most 100, got {}", self.floor_percent),
            ));
        }
        if !(100..=limits::PRICE_CEILING_PERCENT_MAX).contains(&self.ceiling_percent) {
            return Err(Error::invalid(
                "rules.ceiling_percent",
                format!("must be between 100 and {}, got {}", limits::PRICE_CEILING_PERCENT_MAX, self.ceiling_percent),
            ));
        }
        for (field, steps, threshold_max) in [
            ("rules.sell_through_steps", &self.sell_through_steps, 100),
            ("rules.demand_steps", &self.demand_steps, limits::DEMAND_HOLDS_PER_MINUTE_MAX),
        ] {
            if steps.len() > limits::PRICE_STEPS_MAX {
                return Err(Error::invalid(field, format!("at most {} steps", limits::PRICE_STEPS_MAX)));
            }
            for (index, step) in steps.iter().enumerate() {
                if step.threshold > threshold_max {
                    return Err(Error::invalid(
                        format!("{field}[{index}].threshold"),
                        format!("must be at most {threshold_max}, got {}", step.threshold),
                    ));
                }
                if !(-100..=1_000).contains(&step.adjust_percent) {
                    return Err(Error::invalid(
                        format!("{field}[{index}].adjust_percent"),
                        format!("must be between -100 and 1000, got {}", step.adjust_percent),
                    ));
                }
                if index > 0 && step.threshold <= steps[index - 1].threshold {
                    return Err(Error::invalid(
                        format!("{field}[{index}].threshold"),
                        "thresholds must grow from one step to the next",
                    ));
                }
            }
        }
        Ok(())
    }

    fn step(steps: &[PriceStep], value: u32) -> i64 {
        steps.iter().rev().find(|step| value >= step.threshold).map_or(0, |step| i64::from(step.adjust_percent))
    }

    /// The price of a place whose base price is `base`, at this sell-through and demand.
    pub fn price(&self, base: i64, sell_through_percent: u32, holds_last_minute: u32) -> i64 {
        let adjust = Self::step(&self.sell_through_steps, sell_through_percent)
            + Self::step(&self.demand_steps, holds_last_minute);
        let moved = base * (100 + adjust).max(0) / 100;
        let floor = base * i64::from(self.floor_percent) / 100;
        let ceiling = base * i64::from(self.ceiling_percent) / 100;
        moved.clamp(floor, ceiling)
    }
}

/// The demand window: holds placed in the last minute.
pub const DEMAND_WINDOW_MS: u64 = 60_000;

impl Inventory {
    /// Holds placed in the minute before `now_ms`.
    pub(super) fn holds_last_minute(&self, now_ms: u64) -> u32 {
        let since = now_ms.saturating_sub(DEMAND_WINDOW_MS);
        self.recent_holds.iter().rev().take_while(|&&placed_at_ms| placed_at_ms > since).count() as u32
    }

    /// Remembers a hold for the demand window, forgetting what fell out of it.
    pub(super) fn note_hold(&mut self, placed_at_ms: u64) {
        let since = placed_at_ms.saturating_sub(DEMAND_WINDOW_MS);
        while self.recent_holds.front().is_some_and(|&at| at <= since) {
            self.recent_holds.pop_front();
        }
        if self.recent_holds.len() == limits::DEMAND_HOLDS_PER_MINUTE_MAX as usize {
            self.recent_holds.pop_front();
        }
        self.recent_holds.push_back(placed_at_ms);
    }

    /// Percent of the level's places held or booked.
    fn level_sell_through(&self, level: u16) -> u32 {
        let (mut taken, mut total) = (0u64, 0u64);
        for (section, (&section_level, counts)) in self.section_levels.iter().zip(&self.counts).enumerate() {
            if section_level == level {
                let SectionCounts { held, booked } = *counts;
                taken += u64::from(held + booked);
                total += u64::from(self.seat_map.sections[section].capacity());
            }
        }
        (taken * 100).checked_div(total).unwrap_or(100) as u32
    }

    /// What a place in `section` costs now.
    pub fn current_price(&self, section: u16, now_ms: u64) -> i64 {
        let level = self.section_levels[section as usize];
        let base = self.terms.price_levels[level as usize].amount_minor;
        match &self.pricing {
            None => base,
            Some(rules) => rules.price(base, self.level_sell_through(level), self.holds_last_minute(now_ms)),
        }
    }

    /// The admin set pricing rules: prices move with sell-through and demand.
    pub fn has_pricing(&self) -> bool {
        self.pricing.is_some()
    }

    /// Every section's price now, in seat-map order. One pass over the sections (this runs
    /// after every change, for the read snapshot).
    pub fn current_prices(&self, now_ms: u64) -> Vec<i64> {
        let base = |level: u16| self.terms.price_levels[level as usize].amount_minor;
        let Some(rules) = &self.pricing else {
            return self.section_levels.iter().map(|&level| base(level)).collect();
        };
        let mut levels = vec![(0u64, 0u64); self.terms.price_levels.len()];
        for (section, (&level, counts)) in self.section_levels.iter().zip(&self.counts).enumerate() {
            let (taken, total) = &mut levels[level as usize];
            *taken += u64::from(counts.held + counts.booked);
            *total += u64::from(self.seat_map.sections[section].capacity());
        }
        let demand = self.holds_last_minute(now_ms);
        self.section_levels
            .iter()
            .map(|&level| {
                let (taken, total) = levels[level as usize];
                let sell_through = (taken * 100).checked_div(total).unwrap_or(100) as u32;
                rules.price(base(level), sell_through, demand)
            })
            .collect()
    }
}

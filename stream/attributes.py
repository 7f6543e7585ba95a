"""The ten engagement attribute types: names, nesting, topics and typed fields.

This table is the single place that knows LivePerson's attribute vocabulary. The
decoder walks it, the Avro schemas mirror it, and the settings use it for topic
names. Field order is the order of the record-format notes (section 7), which is
also the order in which the decoder checks fields (the first failure wins).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Kind(Enum):
    """The output type of one attribute field (contract section 10.3)."""

    STRING = "string"
    DOUBLE = "double"
    INT = "int"
    COUNT = "count"  # an int that must not be negative (quantity, numItems)
    LONG = "long"
    BOOLEAN = "boolean"
    DATE = "date"  # {year, month, day}
    PRODUCTS = "products"  # list of product lines
    CONTACTS = "contacts"  # list of {email, phone}
    KEYWORDS = "keywords"  # list of strings
    CART = "cart"  # purchase.cart: {total, currency, numItems, products}
    CUSTOMER_AGE = "customerAge"  # personalInfo.customerAge


Field = tuple[str, Kind]

PRODUCT_LINE_FIELDS: tuple[Field, ...] = (
    ("quantity", Kind.COUNT),
    ("name", Kind.STRING),
    ("category", Kind.STRING),
    ("sku", Kind.STRING),
    ("price", Kind.DOUBLE),
)
# The fields of a product line that sit inside its "product" object.
PRODUCT_FIELDS: tuple[Field, ...] = PRODUCT_LINE_FIELDS[1:]

CONTACT_FIELDS: tuple[Field, ...] = (("email", Kind.STRING), ("phone", Kind.STRING))

CART_FIELDS: tuple[Field, ...] = (
    ("total", Kind.DOUBLE),
    ("currency", Kind.STRING),
    ("numItems", Kind.COUNT),
    ("products", Kind.PRODUCTS),
)

CUSTOMER_AGE_FIELDS: tuple[Field, ...] = (
    ("customerAgeInYears", Kind.DOUBLE),
    ("customerYearOfBirth", Kind.INT),
    ("customerMonthOfBirth", Kind.INT),
    ("customerDateOfBirth", Kind.INT),
)

DATE_PARTS: tuple[str, ...] = ("year", "month", "day")


@dataclass(frozen=True)
class AttributeSpec:
    """One attribute type as it appears in a record and on its output topic."""

    sde_type: str  # the event's "sdeType" value, e.g. "LEAD"
    key: str  # the attribute object's key in the event, e.g. "lead"
    nested: bool  # fields sit one level deeper, under key.key
    topic: str  # default output topic name (before the prefix)
    record_name: str  # Avro record name of the published schema
    fields: tuple[Field, ...]

    @property
    def env_suffix(self) -> str:
        """Upper-case form used in environment variable names (CART_STATUS)."""
        return self.sde_type


_SPECS = (
    AttributeSpec(
        "CUSTOMER_INFO",
        "customerInfo",
        True,
        "customerInfo",
        "CustomerInfo",
        (
            ("customerStatus", Kind.STRING),
            ("customerType", Kind.STRING),
            ("balance", Kind.DOUBLE),
            ("currency", Kind.STRING),
            ("customerId", Kind.STRING),
            ("socialId", Kind.STRING),
            ("imei", Kind.STRING),
            ("userName", Kind.STRING),
            ("accountName", Kind.STRING),
            ("role", Kind.STRING),
            ("companyBranch", Kind.STRING),
            ("companySize", Kind.INT),
            ("storeZipCode", Kind.STRING),
            ("storeNumber", Kind.STRING),
            ("loginStatus", Kind.INT),
            ("lastPaymentDate", Kind.DATE),
            ("registrationDate", Kind.DATE),
        ),
    ),
    AttributeSpec(
        "PERSONAL_INFO",
        "personalInfo",
        True,
        "personalInfo",
        "PersonalInfo",
        (
            ("name", Kind.STRING),
            ("surname", Kind.STRING),
            ("gender", Kind.STRING),
            ("company", Kind.STRING),
            ("language", Kind.STRING),
            ("customerAge", Kind.CUSTOMER_AGE),
            ("contacts", Kind.CONTACTS),
        ),
    ),
    AttributeSpec(
        "CART_STATUS",
        "cartStatus",
        False,
        "cartStatus",
        "CartStatus",
        CART_FIELDS,
    ),
    AttributeSpec(
        "PURCHASE",
        "purchase",
        False,
        "purchases",
        "Purchase",
        (
            ("total", Kind.DOUBLE),
            ("currency", Kind.STRING),
            ("orderId", Kind.STRING),
            ("cart", Kind.CART),
        ),
    ),
    AttributeSpec(
        "VIEWED_PRODUCT",
        "viewedProduct",
        False,
        "viewedProducts",
        "ViewedProduct",
        (("currency", Kind.STRING), ("products", Kind.PRODUCTS)),
    ),
    AttributeSpec(
        "MARKETING_CAMPAIGN_INFO",
        "marketingCampaignInfo",
        True,
        "marketingCampaignInfo",
        "MarketingCampaignInfo",
        (
            ("originatingChannel", Kind.INT),
            ("affiliate", Kind.STRING),
            ("campaignId", Kind.STRING),
        ),
    ),
    AttributeSpec(
        "SEARCH_CONTENT",
        "searchContent",
        False,
        "searchContent",
        "SearchContent",
        (("keywords", Kind.KEYWORDS),),
    ),
    AttributeSpec(
        "VISITOR_ERROR",
        "visitorError",
        True,
        "visitorErrors",
        "VisitorError",
        (
            ("contextId", Kind.STRING),
            ("message", Kind.STRING),
            ("code", Kind.STRING),
            ("level", Kind.LONG),
            ("resolved", Kind.BOOLEAN),
        ),
    ),
    AttributeSpec(
        "LEAD",
        "lead",
        True,
        "leads",
        "Lead",
        (
            ("topic", Kind.STRING),
            ("value", Kind.DOUBLE),
            ("currency", Kind.STRING),
            ("leadId", Kind.STRING),
        ),
    ),
    AttributeSpec(
        "SERVICE_ACTIVITY",
        "serviceActivity",
        True,
        "serviceActivities",
        "ServiceActivity",
        (
            ("topic", Kind.STRING),
            ("status", Kind.INT),
            ("category", Kind.STRING),
            ("serviceId", Kind.STRING),
        ),
    ),
)

# attribute key -> spec, in the order of the record-format notes
ATTRIBUTES: dict[str, AttributeSpec] = {spec.key: spec for spec in _SPECS}
# sdeType -> spec
BY_SDE_TYPE: dict[str, AttributeSpec] = {spec.sde_type: spec for spec in _SPECS}

-- The location domain's sites (a generated dataset, see domains/location/README.md), loaded at
-- service start when the table is empty. Read-only afterwards: no events, no versions.
CREATE TABLE IF NOT EXISTS location_sites (
    id                bigint           PRIMARY KEY,
    name              text             NOT NULL,
    source            text             NOT NULL,
    store_category    text             NOT NULL,
    pickup_categories text[]           NOT NULL DEFAULT '{}',
    road_address      text             NOT NULL,
    lot_address       text,
    -- Valkey's GEO index holds latitudes within ±85.05112878 only.
    latitude          double precision NOT NULL CHECK (latitude BETWEEN -85.05112878 AND 85.05112878),
    longitude         double precision NOT NULL CHECK (longitude BETWEEN -180 AND 180),
    phone             text,
    start_time        text,
    end_time          text,
    closed_weekdays   smallint[]       NOT NULL DEFAULT '{}',
    collection_items  text[]           NOT NULL DEFAULT '{}',
    introduction      text             NOT NULL DEFAULT '',
    place_url         text,
    kakao_place_id    text,
    -- What a search matches against (name, road address, lot address), lower-cased once.
    search_text       text GENERATED ALWAYS AS (
        lower(name || ' ' || road_address || ' ' || coalesce(lot_address, ''))
    ) STORED,
    loaded_at         timestamptz      NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS location_sites_store_category ON location_sites (store_category);

-- The character domain (domain.md §8): the catalogue of the 13 collectible characters, who owns
-- which, and one row per user that carries the aggregate version of the user's character events.

-- The catalogue. `code` is the character's id everywhere (scan's RewardGranted.character_id is the
-- code too); `type` is the character's sample items as shown to the user; the image is
-- <cdn>/character/<cdn_code>.png. `position` is the catalogue order (이코 first).
CREATE TABLE IF NOT EXISTS character_catalog (
    code        text    PRIMARY KEY,
    name        text    NOT NULL UNIQUE,
    match_label text    NOT NULL UNIQUE,
    type        text    NOT NULL,
    dialog      text    NOT NULL,
    cdn_code    text    NOT NULL,
    position    integer NOT NULL UNIQUE
);

INSERT INTO character_catalog (position, code, name, match_label, type, dialog, cdn_code) VALUES
    (1,  'char-eco',          '이코',   '대표 캐릭터',   '이코에코 대표 캐릭터',
         '사진 한 장이면 돼! 같이 제대로 버려 보자.', 'eco'),
    (2,  'char-petty',        '페티',   '무색페트병',    '생수·음료 투명 페트병',
         '라벨 벗기고 꾹 눌러서, 뚜껑은 닫아서 보내 줘!', 'pet'),
    (3,  'char-metally',      '메탈리', '금속류',        '캔·고철',
         '스프레이 캔은 가스를 끝까지 빼고 와야 해!', 'metal'),
    (4,  'char-paepy',        '페이피', '종이',          '상자·신문지·책',
         '박스 테이프는 떼고 납작하게 접어 줘!', 'paper'),
    (5,  'char-plea',         '플리',   '플라스틱류',    'PET·PP·PE·PS 용기',
         '깨끗이 헹군 통만 다시 태어날 수 있어!', 'plastic'),
    (6,  'char-bini',         '비니',   '비닐류',        '포장 비닐·봉투·필름',
         '비닐은 탈탈 털어서 한 봉지에 모아 줘!', 'vinyl'),
    (7,  'char-foamy',        '폼이',   '발포합성수지',  '스티로폼 상자·과일 받침·단열재',
         '스티커랑 테이프는 꼭 떼어 줘야 해!', 'styrofoam'),
    (8,  'char-glassy',       '글래시', '유리병',        '유리병·소주병·맥주병',
         '소주병·맥주병은 가게에 돌려주면 보증금이 와!', 'glass'),
    (9,  'char-factory',      '팩토리', '종이팩',        '우유팩·두유팩·주스팩',
         '헹궈서 펼친 다음 종이랑은 따로 묶어 줘!', 'paper_products'),
    (10, 'char-battery',      '배리',   '전지',          '건전지·충전지',
         '다 쓴 배터리는 전용 수거함으로! 불나면 큰일이야.', 'battery'),
    (11, 'char-lighty',       '라이티', '조명제품',      '형광등·LED 조명',
         '깨지지 않게 살살 형광등 수거함으로!', 'lighting'),
    (12, 'char-cotton',       '코튼',   '의류및원단',    '옷·신발·가방',
         '깨끗한 옷은 누군가 또 입어. 신발은 짝 맞춰 묶어 줘!', 'clothes'),
    (13, 'char-eb7429f0523f', '일렉',   '전기전자제품',  '가전제품·IT 기기',
         '큰 가전은 무상 방문수거를 불러 봐!', 'monitor')
ON CONFLICT (code) DO NOTHING;

-- One row per user the domain has heard of. `version` is the aggregate version of the user's last
-- character event (aggregate id = user id); it is bumped in the transaction that appends the event,
-- under the row lock, so grants of one user are serialised. `deleted_at` set → grants are rejected.
CREATE TABLE IF NOT EXISTS character_users (
    user_id    text        PRIMARY KEY,
    version    integer     NOT NULL DEFAULT 0 CHECK (version >= 0),
    deleted_at timestamptz
);

-- Ownership, unique per (user, character): a repeated grant is a no-op. `id` is
-- uuid5(NAMESPACE_DNS, 'ownership:<user_id>:<character_code>'), as in the original.
CREATE TABLE IF NOT EXISTS character_ownerships (
    id             uuid        PRIMARY KEY,
    user_id        text        NOT NULL,
    character_code text        NOT NULL REFERENCES character_catalog (code),
    status         text        NOT NULL DEFAULT 'owned'
                               CHECK (status IN ('owned', 'burned', 'traded')),
    source         text        NOT NULL CHECK (source IN ('scan', 'default-onboard')),
    scan_id        text,
    acquired_at    timestamptz NOT NULL,
    UNIQUE (user_id, character_code)
);

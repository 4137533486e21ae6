DELETE FROM revisions WHERE name = 'sources';
DROP TABLE source_rejections;
DROP TABLE sources;

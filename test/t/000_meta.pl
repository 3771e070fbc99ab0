# META.json follows the PGXN meta spec 1.0.0 and agrees with sessrev.control.
use strict;
use warnings;
use JSON::PP;
use File::Basename qw(dirname);
use Test::More;

my $top = dirname(__FILE__) . '/../..';
open my $fh, '<', "$top/META.json" or die "META.json: $!";
my $meta = decode_json(do { local $/; <$fh> });
open my $ctl, '<', "$top/sessrev.control" or die "sessrev.control: $!";
my ($default_version) = map { /^default_version\s*=\s*'([^']+)'/ ? $1 : () } <$ctl>;

for my $key (qw(name abstract version maintainer license provides meta-spec)) {
	ok(exists $meta->{$key}, "META.json has required key $key");
}
is($meta->{'meta-spec'}{version}, '1.0.0', 'meta-spec version is 1.0.0');
like($meta->{version}, qr/^\d+\.\d+\.\d+$/, 'distribution version is semantic');
is($meta->{name}, 'sessrev', 'distribution is named sessrev');
my $ext = $meta->{provides}{sessrev};
ok($ext, 'META.json provides the sessrev extension');
like($ext->{version}, qr/^\Q$default_version\E\.\d+$/, 'provided version matches default_version');
ok(-f "$top/$ext->{file}", "provided file $ext->{file} exists");
ok(-f "$top/sql/sessrev--$default_version.sql", 'the default version has an install script');
done_testing();
